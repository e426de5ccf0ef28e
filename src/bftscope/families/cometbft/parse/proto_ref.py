"""Reference protobuf decoding of CometBFT consensus messages and WAL records, and their types.

Owns the one place where CometBFT's protobuf schemas (``cometbft.consensus.v1.Message``,
``cometbft.types.v1.Vote``/``Proposal``/``Part``, ``cometbft.consensus.v1.WALMessage``) are known.
The schemas have been wire-stable from Tendermint v0.34 to CometBFT 1.x (v0.38 added vote
extensions and ``HasProposalBlockPart``), so one decoder serves every version.

This *generic* decoder (``_fields`` and the functions built on it) accepts any field order,
repeated and unknown fields, and is the reference for every result and error; the fast paths in
:mod:`bftscope.families.cometbft.parse.proto` fall back to it. Every function raises :class:`ProtoError` on
truncated or malformed input instead of returning garbage, which the parsers count as skipped.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = [
    "MSG_TYPES",
    "STEP_NAMES",
    "ConsensusMsg",
    "ProtoError",
    "WalRecord",
    "signed_msg_type",
    "step_name",
]


class ProtoError(ValueError):
    """Input is not a well-formed instance of the expected protobuf message."""


# Field number of each member of the ``Message.sum`` oneof → normalized message type name.
MSG_TYPES: dict[int, str] = {
    1: "new_round_step",
    2: "new_valid_block",
    3: "proposal",
    4: "proposal_pol",
    5: "block_part",
    6: "vote",
    7: "has_vote",
    8: "vote_set_maj23",
    9: "vote_set_bits",
    10: "has_proposal_block_part",
}

# RoundStepType integers (cometbft/internal/consensus/types/round_state.go).
STEP_NAMES: dict[int, str] = {
    1: "new_height",
    2: "new_round",
    3: "propose",
    4: "prevote",
    5: "prevote_wait",
    6: "precommit",
    7: "precommit_wait",
    8: "commit",
}

_SIGNED_MSG_TYPES = {1: "prevote", 2: "precommit", 32: "proposal"}


def signed_msg_type(value: int) -> str:
    """Name of a ``SignedMsgType`` enum value (``prevote``, ``precommit``, ``proposal``)."""
    return _SIGNED_MSG_TYPES.get(value, f"unknown_{value}")


class ConsensusMsg(NamedTuple):
    """The fields of a consensus message that the event model keeps.

    ``validator`` is upper-case hex (as CometBFT prints addresses); ``block_hash`` likewise.
    ``signer_ts`` is the signer's own timestamp in Unix nanoseconds (votes, proposals).
    Absent fields are ``None``.
    """

    msg_type: str
    height: int | None = None
    round: int | None = None
    vote_type: str | None = None
    validator: str | None = None
    validator_index: int | None = None
    part_index: int | None = None
    block_hash: str | None = None
    signer_ts: int | None = None
    step: str | None = None
    extra: str | None = None  # small JSON object of fields without a column


class WalRecord(NamedTuple):
    """One decoded ``TimedWALMessage``."""

    ts: int  # receiver's local time, Unix ns
    kind: str  # round_state | msg_info | timeout | end_height
    height: int | None
    round: int | None
    step: str | None
    msg: ConsensusMsg | None  # for msg_info
    peer: str | None  # for msg_info: sending peer id, "" for the node's own messages
    duration_ns: int | None  # for timeout


_U64 = 1 << 64
_I64_MAX = (1 << 63) - 1


def _fields(buf: bytes) -> dict[int, int | bytes]:
    """Decode one message level: field number → last value (varint int or length-delimited bytes).

    Fixed32/fixed64 fields are returned as unsigned ints. Repeated fields keep the last value,
    which is all the consensus messages we read need (none of our fields is repeated).
    """
    out: dict[int, int | bytes] = {}
    pos = 0
    end = len(buf)
    while pos < end:
        # tag varint (inline: tags are almost always one byte)
        b = buf[pos]
        pos += 1
        if b < 0x80:
            tag = b
        else:
            tag = b & 0x7F
            shift = 7
            while True:
                if pos >= end:
                    raise ProtoError("truncated tag")
                b = buf[pos]
                pos += 1
                tag |= (b & 0x7F) << shift
                if b < 0x80:
                    break
                shift += 7
                if shift > 63:
                    raise ProtoError("tag varint too long")
        field = tag >> 3
        wire = tag & 7
        if field == 0:
            raise ProtoError("field number 0")
        if wire == 0 or wire == 2:
            if pos >= end:
                raise ProtoError("truncated varint")
            b = buf[pos]
            pos += 1
            if b < 0x80:
                val = b
            else:
                val = b & 0x7F
                shift = 7
                while True:
                    if pos >= end:
                        raise ProtoError("truncated varint")
                    b = buf[pos]
                    pos += 1
                    val |= (b & 0x7F) << shift
                    if b < 0x80:
                        break
                    shift += 7
                    if shift > 63:
                        raise ProtoError("varint too long")
            if wire == 0:
                out[field] = val
            else:
                stop = pos + val
                if stop > end:
                    raise ProtoError("length-delimited field overruns message")
                out[field] = buf[pos:stop]
                pos = stop
        elif wire == 5:
            if pos + 4 > end:
                raise ProtoError("truncated fixed32")
            out[field] = int.from_bytes(buf[pos : pos + 4], "little")
            pos += 4
        elif wire == 1:
            if pos + 8 > end:
                raise ProtoError("truncated fixed64")
            out[field] = int.from_bytes(buf[pos : pos + 8], "little")
            pos += 8
        else:
            raise ProtoError(f"unsupported wire type {wire}")
    return out


def _int(fields: dict[int, int | bytes], n: int) -> int:
    """A signed varint field (int32/int64), 0 when absent (proto3 default)."""
    v = fields.get(n, 0)
    if isinstance(v, bytes):
        raise ProtoError(f"field {n}: expected varint")
    return v - _U64 if v > _I64_MAX else v


def _bytes(fields: dict[int, int | bytes], n: int) -> bytes:
    v = fields.get(n, b"")
    if not isinstance(v, bytes):
        raise ProtoError(f"field {n}: expected bytes")
    return v


def _timestamp_ns(buf: bytes) -> int:
    """``google.protobuf.Timestamp`` → Unix nanoseconds."""
    f = _fields(buf)
    return _int(f, 1) * 1_000_000_000 + _int(f, 2)


def _block_hash(block_id: bytes) -> str | None:
    if not block_id:
        return None
    h = _bytes(_fields(block_id), 1)
    return h.hex().upper() if h else None


def _vote(buf: bytes, msg_type: str = "vote") -> ConsensusMsg:
    f = _fields(buf)
    addr = _bytes(f, 6)
    ts = f.get(5)
    ext = f.get(9)
    return ConsensusMsg(
        msg_type,
        height=_int(f, 2),
        round=_int(f, 3),
        vote_type=signed_msg_type(_int(f, 1)),
        validator=addr.hex().upper() if addr else None,
        validator_index=_int(f, 7),
        block_hash=_block_hash(_bytes(f, 4)),
        signer_ts=_timestamp_ns(ts) if isinstance(ts, bytes) else None,
        extra=f'{{"extension_bytes":{len(ext)}}}' if isinstance(ext, bytes) and ext else None,
    )


def _proposal(buf: bytes) -> ConsensusMsg:
    f = _fields(buf)
    ts = f.get(6)
    bid = _bytes(f, 5)
    total, parts_hash = None, ""
    if bid:
        psh = _bytes(_fields(bid), 2)
        total = _int(_fields(psh), 1) if psh else 0
        if h := _bytes(_fields(psh), 2) if psh else b"":
            parts_hash = f',"parts_hash":"{h.hex().upper()}"'  # the part-set hash, when the proposal has one
    return ConsensusMsg(
        "proposal",
        height=_int(f, 2),
        round=_int(f, 3),
        block_hash=_block_hash(bid),
        signer_ts=_timestamp_ns(ts) if isinstance(ts, bytes) else None,
        extra=f'{{"pol_round":{_int(f, 4)},"parts_total":{total if total is not None else 0}{parts_hash}}}',
    )


def _consensus_generic(buf: bytes) -> ConsensusMsg:
    """Reference decoder of a ``consensus.Message``; see :func:`decode_consensus_message`."""
    outer = _fields(buf)
    if len(outer) != 1:
        raise ProtoError("consensus message must set exactly one oneof member")
    ((num, inner),) = outer.items()
    msg_type = MSG_TYPES.get(num)
    if msg_type is None:
        raise ProtoError(f"unknown consensus message field {num}")
    if not isinstance(inner, bytes):
        raise ProtoError("consensus message member is not a message")
    if num == 6:  # Vote{vote}
        return _vote(_bytes(_fields(inner), 1))
    if num == 3:  # Proposal{proposal}
        return _proposal(_bytes(_fields(inner), 1))
    f = _fields(inner)
    height = _int(f, 1)
    if num == 5:  # BlockPart{height, round, part{index, bytes, proof}}
        part = _fields(_bytes(f, 3))
        return ConsensusMsg(
            "block_part",
            height=height,
            round=_int(f, 2),
            part_index=_int(part, 1),
            extra=f'{{"part_bytes":{len(_bytes(part, 2))}}}',
        )
    if num == 1:  # NewRoundStep{height, round, step, seconds_since_start_time, last_commit_round}
        step = _int(f, 3)
        return ConsensusMsg(
            "new_round_step",
            height=height,
            round=_int(f, 2),
            step=STEP_NAMES.get(step, f"unknown_{step}"),
            extra=f'{{"last_commit_round":{_int(f, 5)}}}',
        )
    if num == 7:  # HasVote{height, round, type, index}
        return ConsensusMsg(
            "has_vote",
            height=height,
            round=_int(f, 2),
            vote_type=signed_msg_type(_int(f, 3)),
            validator_index=_int(f, 4),
        )
    if num in (8, 9):  # VoteSetMaj23 / VoteSetBits {height, round, type, block_id, [votes]}
        return ConsensusMsg(
            msg_type,
            height=height,
            round=_int(f, 2),
            vote_type=signed_msg_type(_int(f, 3)),
            block_hash=_block_hash(_bytes(f, 4)),
        )
    if num == 2:  # NewValidBlock{height, round, part_set_header, block_parts, is_commit}
        psh = _bytes(f, 3)
        return ConsensusMsg(
            "new_valid_block",
            height=height,
            round=_int(f, 2),
            block_hash=_bytes(_fields(psh), 2).hex().upper() if psh else None,
            extra=f'{{"is_commit":{"true" if _int(f, 5) else "false"}}}',
        )
    if num == 4:  # ProposalPOL{height, proposal_pol_round, proposal_pol}
        return ConsensusMsg("proposal_pol", height=height, round=_int(f, 2))
    # 10: HasProposalBlockPart{height, round, index}
    return ConsensusMsg(msg_type, height=height, round=_int(f, 2), part_index=_int(f, 3))


def _wal_generic(buf: bytes) -> WalRecord:
    """Reference decoder of a ``TimedWALMessage``; see :func:`decode_wal_message`."""
    f = _fields(buf)
    t = f.get(1)
    if not isinstance(t, bytes):
        raise ProtoError("WAL record without time")
    ts = _timestamp_ns(t)
    wal = _fields(_bytes(f, 2))
    if len(wal) != 1:
        raise ProtoError("WAL message must set exactly one oneof member")
    ((num, inner),) = wal.items()
    if not isinstance(inner, bytes):
        raise ProtoError("WAL message member is not a message")
    m = _fields(inner)
    if num == 1:  # EventDataRoundState{height, round, step string}
        step = _bytes(m, 3).decode("ascii", "replace")
        return WalRecord(ts, "round_state", _int(m, 1), _int(m, 2), step_name(step), None, None, None)
    if num == 2:  # MsgInfo{msg, peer_id}
        msg = _consensus_generic(_bytes(m, 1))
        peer = _bytes(m, 2).decode("ascii", "replace")
        return WalRecord(ts, "msg_info", msg.height, msg.round, None, msg, peer, None)
    if num == 3:  # TimeoutInfo{duration, height, round, step}
        d = m.get(1)
        dur = None
        if isinstance(d, bytes):
            df = _fields(d)
            dur = _int(df, 1) * 1_000_000_000 + _int(df, 2)
        step_i = _int(m, 4)
        return WalRecord(
            ts, "timeout", _int(m, 2), _int(m, 3), STEP_NAMES.get(step_i, f"unknown_{step_i}"), None, None, dur
        )
    if num == 4:  # EndHeight{height}
        return WalRecord(ts, "end_height", _int(m, 1), None, None, None, None, None)
    raise ProtoError(f"unknown WAL message field {num}")


_STEP_BY_ROUNDSTEP = {
    "RoundStepNewHeight": "new_height",
    "RoundStepNewRound": "new_round",
    "RoundStepPropose": "propose",
    "RoundStepPrevote": "prevote",
    "RoundStepPrevoteWait": "prevote_wait",
    "RoundStepPrecommit": "precommit",
    "RoundStepPrecommitWait": "precommit_wait",
    "RoundStepCommit": "commit",
}


def step_name(round_step: str) -> str:
    """``RoundStepPrevoteWait`` → ``prevote_wait``; unknown strings are kept verbatim."""
    return _STEP_BY_ROUNDSTEP.get(round_step, round_step)
