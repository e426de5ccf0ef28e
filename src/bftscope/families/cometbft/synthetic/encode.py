"""Protobuf wire-format *encoding* of CometBFT consensus messages (the inverse of
:mod:`..parse.proto`).

Owns the byte layout the network simulator puts in ``Send``/``TrySend``/``Received bytes`` lines,
and that tests use to build messages whose decoded values are known in advance. The layout follows
what CometBFT's gogoproto-generated marshallers emit, because analytics match a send with its receive
by the exact bytes:

* proto3 scalars with their default value (0, empty bytes, false) are omitted;
* ``int32``/``int64`` negatives (``pol_round = -1``, ``last_commit_round = -1``) are 10-byte varints
  of the 64-bit two's complement;
* embedded messages declared non-nullable in CometBFT (``BlockID``, ``PartSetHeader``, vote and
  proposal ``Timestamp``, ``Part.proof``) are always written, even when empty — so a nil vote
  carries ``BlockID{PartSetHeader{}}`` as the bytes ``22 02 12 00``.

Field numbers are those of ``cometbft.consensus.v1.Message`` and ``cometbft.types.v1`` (wire-identical
from Tendermint v0.34 to CometBFT 1.x).
"""

from __future__ import annotations

__all__ = [
    "PRECOMMIT",
    "PREVOTE",
    "PROPOSAL",
    "block_id",
    "field_bytes",
    "field_varint",
    "msg_block_part",
    "msg_has_proposal_block_part",
    "msg_has_vote",
    "msg_new_round_step",
    "msg_new_valid_block",
    "msg_proposal",
    "msg_vote",
    "proposal",
    "timestamp",
    "varint",
    "vote",
]

PREVOTE = 1
PRECOMMIT = 2
PROPOSAL = 32

_U64 = 1 << 64


def varint(value: int) -> bytes:
    """Base-128 varint; negative values are encoded as 64-bit two's complement (10 bytes)."""
    if value < 0:
        value += _U64
    if value < 0x80:
        return bytes((value,))
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def field_varint(number: int, value: int | bool) -> bytes:
    """A varint field (wire type 0); omitted when it has the proto3 default (0/false)."""
    if not value:
        return b""
    return varint(number << 3) + varint(int(value))


def field_bytes(number: int, data: bytes, *, always: bool = False) -> bytes:
    """A length-delimited field (wire type 2). Empty data is omitted unless ``always`` (non-nullable message)."""
    if not data and not always:
        return b""
    return varint((number << 3) | 2) + varint(len(data)) + data


def timestamp(unix_ns: int) -> bytes:
    """``google.protobuf.Timestamp`` body for a Unix time in nanoseconds (floor to seconds, nanos ≥ 0)."""
    seconds, nanos = divmod(unix_ns, 1_000_000_000)
    return field_varint(1, seconds) + field_varint(2, nanos)


def block_id(block_hash: bytes, parts_total: int, parts_hash: bytes) -> bytes:
    """``BlockID{hash, PartSetHeader{total, hash}}`` body; all-empty arguments give the nil BlockID."""
    psh = field_varint(1, parts_total) + field_bytes(2, parts_hash)
    return field_bytes(1, block_hash) + field_bytes(2, psh, always=True)


def vote(
    vote_type: int,
    height: int,
    round_: int,
    block_hash: bytes,
    parts_total: int,
    parts_hash: bytes,
    unix_ns: int,
    validator_address: bytes,
    validator_index: int,
    signature: bytes,
) -> bytes:
    """``types.Vote`` body. A nil vote has ``block_hash = parts_hash = b""`` and ``parts_total = 0``."""
    return b"".join(
        (
            field_varint(1, vote_type),
            field_varint(2, height),
            field_varint(3, round_),
            field_bytes(4, block_id(block_hash, parts_total, parts_hash), always=True),
            field_bytes(5, timestamp(unix_ns), always=True),
            field_bytes(6, validator_address),
            field_varint(7, validator_index),
            field_bytes(8, signature),
        )
    )


def proposal(
    height: int,
    round_: int,
    pol_round: int,
    block_hash: bytes,
    parts_total: int,
    parts_hash: bytes,
    unix_ns: int,
    signature: bytes,
) -> bytes:
    """``types.Proposal`` body (``type`` is always ``SIGNED_MSG_TYPE_PROPOSAL`` = 32)."""
    return b"".join(
        (
            field_varint(1, PROPOSAL),
            field_varint(2, height),
            field_varint(3, round_),
            field_varint(4, pol_round),
            field_bytes(5, block_id(block_hash, parts_total, parts_hash), always=True),
            field_bytes(6, timestamp(unix_ns), always=True),
            field_bytes(7, signature),
        )
    )


# --- consensus.Message wrappers (the bytes that travel on channels 0x20..0x23) --------------------


def msg_new_round_step(height: int, round_: int, step: int, seconds_since_start: int, last_commit_round: int) -> bytes:
    body = (
        field_varint(1, height)
        + field_varint(2, round_)
        + field_varint(3, step)
        + field_varint(4, seconds_since_start)
        + field_varint(5, last_commit_round)
    )
    return field_bytes(1, body, always=True)


def msg_new_valid_block(
    height: int, round_: int, parts_total: int, parts_hash: bytes, parts_have: list[bool], is_commit: bool
) -> bytes:
    """``NewValidBlock``; ``parts_have`` becomes the ``BitArray{bits, elems}`` of received parts."""
    words = [0] * ((len(parts_have) + 63) // 64)
    for i, have in enumerate(parts_have):
        if have:
            words[i // 64] |= 1 << (i % 64)
    packed = b"".join(varint(w) for w in words)
    bits = field_varint(1, len(parts_have)) + field_bytes(2, packed)
    psh = field_varint(1, parts_total) + field_bytes(2, parts_hash)
    body = (
        field_varint(1, height)
        + field_varint(2, round_)
        + field_bytes(3, psh, always=True)
        + field_bytes(4, bits, always=True)
        + field_varint(5, is_commit)
    )
    return field_bytes(2, body, always=True)


def msg_proposal(proposal_body: bytes) -> bytes:
    return field_bytes(3, field_bytes(1, proposal_body, always=True), always=True)


def msg_block_part(
    height: int,
    round_: int,
    index: int,
    data: bytes,
    proof_total: int,
    proof_index: int,
    leaf_hash: bytes,
    aunts: list[bytes],
) -> bytes:
    """``BlockPart{height, round, Part{index, bytes, Proof{total, index, leaf_hash, aunts}}}``."""
    proof = (
        field_varint(1, proof_total)
        + field_varint(2, proof_index)
        + field_bytes(3, leaf_hash)
        + b"".join(field_bytes(4, a, always=True) for a in aunts)
    )
    part = field_varint(1, index) + field_bytes(2, data) + field_bytes(3, proof, always=True)
    body = field_varint(1, height) + field_varint(2, round_) + field_bytes(3, part, always=True)
    return field_bytes(5, body, always=True)


def msg_vote(vote_body: bytes) -> bytes:
    return field_bytes(6, field_bytes(1, vote_body, always=True), always=True)


def msg_has_vote(height: int, round_: int, vote_type: int, index: int) -> bytes:
    body = field_varint(1, height) + field_varint(2, round_) + field_varint(3, vote_type) + field_varint(4, index)
    return field_bytes(7, body, always=True)


def msg_has_proposal_block_part(height: int, round_: int, index: int) -> bytes:
    body = field_varint(1, height) + field_varint(2, round_) + field_varint(3, index)
    return field_bytes(10, body, always=True)
