"""What a WAL vote record holds beyond the event row: the signature and the block id's part-set header.

The event rows of :mod:`bftscope.families.cometbft.parse.wal` keep a vote's height, round, type, validator,
block hash and timestamp; an RPC ``Vote`` frame also shows the signature and ``block_id.parts``. This
module reads those from the record bytes (protobuf path ``TimedWALMessage.msg(2) → WALMessage.msg_info(2) →
MsgInfo.msg(1) → Message.vote(6) → Vote.vote(1)``; in the vote: 4 block_id {1 hash, 2 parts {1 total,
2 hash}}, 8 signature).
"""

from __future__ import annotations

from typing import NamedTuple

from bftscope.families.cometbft.parse.proto import read_varint  # raises ProtoError, a ValueError

__all__ = ["VoteWire", "vote_wire"]


class VoteWire(NamedTuple):
    signature: bytes
    parts_total: int
    parts_hash: str  # upper hex, "" when absent (a nil vote)


def _fields(buf: bytes) -> dict[int, int | bytes]:
    """Field number → last value (varint as int, length-delimited as bytes); fixed widths are skipped."""
    out: dict[int, int | bytes] = {}
    pos = 0
    while pos < len(buf):
        key, pos = read_varint(buf, pos, len(buf))
        num, wire = key >> 3, key & 7
        if wire == 0:
            out[num], pos = read_varint(buf, pos, len(buf))
        elif wire == 2:
            n, pos = read_varint(buf, pos, len(buf))
            if pos + n > len(buf):
                raise ValueError("truncated field")
            out[num] = buf[pos : pos + n]
            pos += n
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
    return out


def _sub(fields: dict[int, int | bytes], num: int) -> bytes:
    v = fields.get(num, b"")
    return v if isinstance(v, bytes) else b""


def vote_wire(payload: bytes) -> VoteWire | None:
    """The signature and part-set header of the vote in a WAL record payload; None when it holds no vote."""
    try:
        msg_info = _fields(_sub(_fields(payload), 2))
        if 2 not in msg_info:
            return None
        message = _fields(_sub(_fields(_sub(msg_info, 2)), 1))
        if 6 not in message:
            return None
        vote = _fields(_sub(_fields(_sub(message, 6)), 1))
    except ValueError:
        return None
    parts = _fields(_sub(_fields(_sub(vote, 4)), 2)) if 4 in vote else {}
    total = parts.get(1, 0)
    return VoteWire(_sub(vote, 8), total if isinstance(total, int) else 0, _sub(parts, 2).hex().upper())
