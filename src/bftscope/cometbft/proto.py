"""Protobuf wire-format decoding of CometBFT consensus messages and WAL records.

Owns the one place where CometBFT's protobuf schemas (``cometbft.consensus.v1.Message``,
``cometbft.types.v1.Vote``/``Proposal``/``Part``, ``cometbft.consensus.v1.WALMessage``) are known.
The schemas have been wire-stable from Tendermint v0.34 to CometBFT 1.x (v0.38 added vote
extensions and ``HasProposalBlockPart``), so one decoder serves every version.

Why hand-written instead of generated code: we need a handful of fields from small messages,
millions of times, with no code generation step and no C extension to build. A hand-rolled
varint walker over ``bytes`` is fast enough, and every decoder raises :class:`ProtoError` on
truncated or malformed input instead of returning garbage, which the parsers count as skipped.

Two decoders live here. The *generic* one (``_fields`` and the functions built on it) accepts any
field order, repeated and unknown fields, and is the reference for every result and error. The
*fast paths* (second half of the module) handle only the canonical layout that CometBFT writes,
and hand anything else to the generic one; with two small bounded memos (timestamp seconds,
repeated vote and proposal bytes) they bring a WAL record from ~8 µs to ~2 µs in CPython, which
matters because a WAL or a debug log holds millions of these messages.
"""

from __future__ import annotations

from typing import Any, NamedTuple

__all__ = [
    "MSG_TYPES",
    "STEP_NAMES",
    "ConsensusMsg",
    "ProtoError",
    "WalRecord",
    "decode_consensus_message",
    "decode_wal_message",
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
    total = None
    if bid:
        psh = _bytes(_fields(bid), 2)
        total = _int(_fields(psh), 1) if psh else 0
    return ConsensusMsg(
        "proposal",
        height=_int(f, 2),
        round=_int(f, 3),
        block_hash=_block_hash(bid),
        signer_ts=_timestamp_ns(ts) if isinstance(ts, bytes) else None,
        extra=f'{{"pol_round":{_int(f, 4)},"parts_total":{total if total is not None else 0}}}',
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


# ---------------------------------------------------------------------------------------------
# Fast paths for the canonical encoding.
#
# CometBFT (gogoproto) writes fields in field-number order, with one-byte tags and no unknown
# fields. The generic decoder above pays for its generality with a dict per message level and a
# helper call per field: about 8 µs per WAL record in CPython, where ingest wants a few µs. The
# functions below decode the canonical layout with flat loops and plain locals, and read nested
# messages in place (``buf, pos, end``) instead of slicing them out.
#
# They are deliberately *stricter* than the generic decoder: anything they do not expect (an
# unknown field, a wire type other than the schema's, a multi-byte tag, truncation) raises
# :class:`_Unusual` (or ProtoError/IndexError on truncated bytes), and the public entry points
# then decode the whole buffer again with the generic decoder, which stays the reference for
# every result and every error. The fast paths can only change speed; tests/cometbft/test_proto.py
# checks that both agree on real records and on random mutations of them.
# ---------------------------------------------------------------------------------------------


class _Unusual(Exception):
    """Internal: the fast path met something outside the canonical layout; use the generic decoder."""


# Exceptions a fast path may raise on input it does not handle; each means "ask the generic decoder".
_DECLINED = (_Unusual, ProtoError, IndexError)


def _varint(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    """The varint starting at ``buf[pos]`` → (unsigned value, position after it).

    Same limits as :func:`_fields` (at most 10 bytes), so both decoders agree on every input.
    """
    val = 0
    shift = 0
    while True:
        if pos >= end:
            raise ProtoError("truncated varint")
        b = buf[pos]
        pos += 1
        val |= (b & 0x7F) << shift
        if b < 0x80:
            return val, pos
        shift += 7
        if shift > 63:
            raise ProtoError("varint too long")


# Memo of decoded Timestamp seconds, keyed by the 6 bytes ``08 <5-byte varint>``: consecutive WAL
# records and votes share their second, and decoding a 35-bit varint is the slowest part of a
# timestamp in CPython. Values are premultiplied to nanoseconds. Emptied when full.
_SECONDS_MAX = 4096
_seconds: dict[bytes, int] = {}


def _timestamp_at(buf: bytes, pos: int, end: int) -> int:
    """The ``Timestamp`` (or ``Duration``: same layout) in ``buf[pos:end]`` → nanoseconds.

    Every record and every vote carries one. The usual layout is ``08 <5-byte seconds> 10
    <nanos>`` (seconds between 1978 and 3058, nanos in [0, 1e9)); anything else goes through
    :func:`_timestamp_any`.
    """
    if end - pos > 7 and buf[pos] == 0x08 and buf[pos + 6] == 0x10:
        key = buf[pos : pos + 6]
        seconds = _seconds.get(key)
        if seconds is None:
            seconds, stop = _varint(buf, pos + 1, end)
            if stop != pos + 6:  # not a 5-byte varint after all
                return _timestamp_any(buf, pos, end)
            seconds *= 1_000_000_000
            if len(_seconds) >= _SECONDS_MAX:
                _seconds.clear()
            _seconds[key] = seconds
        start = pos
        pos += 7
        nanos = 0
        shift = 0
        while pos < end:
            b = buf[pos]
            pos += 1
            nanos |= (b & 0x7F) << shift
            if b < 0x80:
                if pos == end:
                    return seconds + nanos
                break
            shift += 7
            if shift > 28:  # not a [0, 1e9) nanos value
                break
        return _timestamp_any(buf, start, end)
    return _timestamp_any(buf, pos, end)


def _timestamp_any(buf: bytes, pos: int, end: int) -> int:
    """:func:`_timestamp_at` for any canonical field layout (zero fields omitted, negative values)."""
    seconds = nanos = 0
    while pos < end:
        tag = buf[pos]
        val, pos = _varint(buf, pos + 1, end)
        if val > _I64_MAX:
            val -= _U64
        if tag == 0x08:  # field 1, varint: seconds
            seconds = val
        elif tag == 0x10:  # field 2, varint: nanos
            nanos = val
        else:
            raise _Unusual
    return seconds * 1_000_000_000 + nanos


def _block_hash_at(buf: bytes, pos: int, end: int) -> str | None:
    """``BlockID{hash, part_set_header}`` in ``buf[pos:end]`` → upper-case hex hash (None if empty)."""
    h = b""
    while pos < end:
        tag = buf[pos]
        n = buf[pos + 1]
        pos += 2
        if n >= 0x80:
            n, pos = _varint(buf, pos - 1, end)
        stop = pos + n
        if stop > end:
            raise _Unusual
        if tag == 0x0A:
            h = buf[pos:stop]
        elif tag != 0x12:
            raise _Unusual
        pos = stop
    return h.hex().upper() if h else None


def _vote_fast(buf: bytes) -> ConsensusMsg:
    """``types.Vote`` (v0.34: fields 1-8; v0.38 adds extension 9 and its signature 10)."""
    typ = height = rnd = index = 0
    block_hash: str | None = None
    signer_ts: int | None = None
    addr = ext = b""
    pos = 0
    end = len(buf)
    while pos < end:
        tag = buf[pos]
        val = buf[pos + 1]
        pos += 2
        if val >= 0x80:
            val, pos = _varint(buf, pos - 1, end)
        if tag & 7 == 2:  # length-delimited: val is the length
            stop = pos + val
            if stop > end:
                raise _Unusual
            if tag == 0x22:  # 4 block_id
                block_hash = _block_hash_at(buf, pos, stop)
            elif tag == 0x2A:  # 5 timestamp
                signer_ts = _timestamp_at(buf, pos, stop)
            elif tag == 0x32:  # 6 validator_address
                addr = buf[pos:stop]
            elif tag == 0x4A:  # 9 extension
                ext = buf[pos:stop]
            elif tag != 0x42 and tag != 0x52:  # 8 signature, 10 extension_signature: not kept
                raise _Unusual
            pos = stop
        else:
            if val > _I64_MAX:
                val -= _U64
            if tag == 0x10:  # 2 height
                height = val
            elif tag == 0x18:  # 3 round
                rnd = val
            elif tag == 0x08:  # 1 type
                typ = val
            elif tag == 0x38:  # 7 validator_index
                index = val
            else:
                raise _Unusual
    return ConsensusMsg(
        "vote",
        height,
        rnd,
        _SIGNED_MSG_TYPES.get(typ) or f"unknown_{typ}",
        addr.hex().upper() if addr else None,
        index,
        None,
        block_hash,
        signer_ts,
        None,
        f'{{"extension_bytes":{len(ext)}}}' if ext else None,
    )


# Layouts for _scan (the less frequent messages): ``wires[n]`` is the wire type field n must
# have (0 varint, 2 length-delimited, _NO not expected) and ``defaults[n]`` its value when absent
# (the proto3 default, or None where the generic decoder tells "absent" apart).
_NO = 0xFF
_ROUNDSTATE_W, _ROUNDSTATE_D = bytes((_NO, 0, 0, 2)), (None, 0, 0, b"")  # EventDataRoundState{height, round, step}
_TIMEOUT_W, _TIMEOUT_D = bytes((_NO, 2, 0, 0, 0)), (None, None, 0, 0, 0)  # TimeoutInfo{duration, height, round, step}
_ENDHEIGHT_W, _ENDHEIGHT_D = bytes((_NO, 0)), (None, 0)  # EndHeight{height}
# Proposal{type, height, round, pol_round, block_id, timestamp, signature}
_PROPOSAL_W, _PROPOSAL_D = bytes((_NO, 0, 0, 0, 0, 2, 2, 2)), (None, 0, 0, 0, 0, b"", None, b"")
_BLOCKID_W, _BLOCKID_D = bytes((_NO, 2, 2)), (None, b"", b"")  # BlockID{hash, part_set_header}
_PSH_W, _PSH_D = bytes((_NO, 0, 2)), (None, 0, b"")  # PartSetHeader{total, hash}
_BLOCKPART_W, _BLOCKPART_D = bytes((_NO, 0, 0, 2)), (None, 0, 0, b"")  # BlockPart{height, round, part}
_PART_W, _PART_D = bytes((_NO, 0, 2, 2)), (None, 0, b"", b"")  # Part{index, bytes, proof}
# NewRoundStep{height, round, step, seconds_since_start_time, last_commit_round}
_NEWROUNDSTEP_W, _NEWROUNDSTEP_D = bytes((_NO, 0, 0, 0, 0, 0)), (None, 0, 0, 0, 0, 0)
_HASVOTE_W, _HASVOTE_D = bytes((_NO, 0, 0, 0, 0)), (None, 0, 0, 0, 0)  # HasVote{height, round, type, index}


def _scan(buf: bytes, wires: bytes, defaults: tuple[Any, ...]) -> list[Any]:
    """One message level in canonical layout → list indexed by field number.

    Varints come back already converted like :func:`_int` (two's complement above 2**63),
    length-delimited fields as bytes, absent fields as ``defaults``. A tag ≥ 0x80 has field ≥ 16,
    beyond every layout, so multi-byte tags are declined too.
    """
    vals = list(defaults)
    nfields = len(wires)
    pos = 0
    end = len(buf)
    while pos < end:
        tag = buf[pos]
        field = tag >> 3
        if field >= nfields or wires[field] != tag & 7:
            raise _Unusual
        val = buf[pos + 1]
        pos += 2
        if val >= 0x80:
            val, pos = _varint(buf, pos - 1, end)
        if tag & 7:  # length-delimited
            stop = pos + val
            if stop > end:
                raise _Unusual
            vals[field] = buf[pos:stop]
            pos = stop
        else:
            vals[field] = val - _U64 if val > _I64_MAX else val
    return vals


def _sole(buf: bytes) -> tuple[int, bytes]:
    """A oneof holder or wrapper set to exactly one length-delimited field → (field, its bytes)."""
    tag = buf[0]
    if tag >= 0x80 or tag & 7 != 2 or tag < 8:
        raise _Unusual
    n = buf[1]
    pos = 2
    end = len(buf)
    if n >= 0x80:
        n, pos = _varint(buf, 1, end)
    if pos + n != end:
        raise _Unusual
    return tag >> 3, buf[pos:]


def _proposal_fast(buf: bytes) -> ConsensusMsg:
    _, _typ, height, rnd, pol_round, bid, ts, _sig = _scan(buf, _PROPOSAL_W, _PROPOSAL_D)
    total = 0
    block_hash = None
    if bid:
        _, h, psh = _scan(bid, _BLOCKID_W, _BLOCKID_D)
        block_hash = h.hex().upper() if h else None
        if psh:
            total = _scan(psh, _PSH_W, _PSH_D)[1]
    return ConsensusMsg(
        "proposal",
        height,
        rnd,
        None,
        None,
        None,
        None,
        block_hash,
        None if ts is None else _timestamp_at(ts, 0, len(ts)),
        None,
        f'{{"pol_round":{pol_round},"parts_total":{total}}}',
    )


def _consensus_fast(buf: bytes) -> ConsensusMsg:
    """:func:`decode_consensus_message` for the members the WAL and the p2p logs carry most."""
    num, inner = _sole(buf)
    if num == 6:  # Vote{vote}
        field, vote = _sole(inner)
        if field != 1:
            raise _Unusual
        return _vote_fast(vote)
    if num == 5:  # BlockPart{height, round, part{index, bytes, proof}}
        _, height, rnd, part = _scan(inner, _BLOCKPART_W, _BLOCKPART_D)
        _, index, data, _proof = _scan(part, _PART_W, _PART_D)
        return ConsensusMsg(
            "block_part", height, rnd, None, None, None, index, None, None, None, f'{{"part_bytes":{len(data)}}}'
        )
    if num == 3:  # Proposal{proposal}
        field, proposal = _sole(inner)
        if field != 1:
            raise _Unusual
        return _proposal_fast(proposal)
    if num == 7:  # HasVote{height, round, type, index}
        _, height, rnd, typ, index = _scan(inner, _HASVOTE_W, _HASVOTE_D)
        return ConsensusMsg("has_vote", height, rnd, _SIGNED_MSG_TYPES.get(typ) or f"unknown_{typ}", None, index)
    if num == 1:  # NewRoundStep{height, round, step, seconds_since_start_time, last_commit_round}
        _, height, rnd, step, _secs, last_commit_round = _scan(inner, _NEWROUNDSTEP_W, _NEWROUNDSTEP_D)
        return ConsensusMsg(
            "new_round_step",
            height,
            rnd,
            step=STEP_NAMES.get(step) or f"unknown_{step}",
            extra=f'{{"last_commit_round":{last_commit_round}}}',
        )
    raise _Unusual


# Memo of decoded small consensus messages (votes, proposals). A node receives every vote from
# several peers and the WAL keeps each receipt, so the same bytes recur (about 2 in 3 vote and
# proposal records of the real 4-node WALs). Block parts are left out: their bytes are big and
# rarely repeat. The result is an immutable tuple computed from the bytes alone, so sharing it is
# safe; the memo is emptied when full, which bounds it to about _MEMO_MAX × 1 KiB.
_MEMO_MAX = 4096
_MEMO_MAX_BYTES = 512
_memo: dict[bytes, ConsensusMsg] = {}


def _consensus_memo(buf: bytes) -> ConsensusMsg:
    try:
        msg = _memo.get(buf)
    except TypeError:  # a mutable buffer (bytearray) slice: unhashable, decode without the memo
        return decode_consensus_message(buf)
    if msg is None:
        msg = decode_consensus_message(buf)
        if len(buf) <= _MEMO_MAX_BYTES:
            if len(_memo) >= _MEMO_MAX:
                _memo.clear()
            _memo[buf] = msg
    return msg


def _wal_fast(buf: bytes) -> WalRecord:
    # TimedWALMessage: 0a <len> Timestamp, then 12 <len> WALMessage up to the end.
    end = len(buf)
    n = buf[1]
    if buf[0] != 0x0A or n >= 0x80:  # a Timestamp is at most 22 bytes: one-byte length
        raise _Unusual
    pos = 2 + n
    ts = _timestamp_at(buf, 2, pos)
    if buf[pos] != 0x12:
        raise _Unusual
    n = buf[pos + 1]
    pos += 2
    if n >= 0x80:
        n, pos = _varint(buf, pos - 1, end)
    if pos + n != end:
        raise _Unusual
    # WALMessage: exactly one member, up to the end.
    tag = buf[pos]
    n = buf[pos + 1]
    pos += 2
    if n >= 0x80:
        n, pos = _varint(buf, pos - 1, end)
    if pos + n != end:
        raise _Unusual
    if tag == 0x12:  # 2 MsgInfo{0a msg, 12 peer_id (absent for the node's own messages)}
        if buf[pos] != 0x0A:
            raise _Unusual
        n = buf[pos + 1]
        pos += 2
        if n >= 0x80:
            n, pos = _varint(buf, pos - 1, end)
        stop = pos + n
        if stop > end:
            raise _Unusual
        msg = _consensus_memo(buf[pos:stop])
        peer = ""
        if stop < end:
            if buf[stop] != 0x12:
                raise _Unusual
            n = buf[stop + 1]  # peer ids are 40 hex characters: one-byte length
            if n >= 0x80 or stop + 2 + n != end:
                raise _Unusual
            peer = buf[stop + 2 :].decode("ascii", "replace")
        return WalRecord(ts, "msg_info", msg.height, msg.round, None, msg, peer, None)
    inner = buf[pos:]
    if tag == 0x0A:  # 1 EventDataRoundState{height, round, step}
        _, height, rnd, step = _scan(inner, _ROUNDSTATE_W, _ROUNDSTATE_D)
        return WalRecord(ts, "round_state", height, rnd, step_name(step.decode("ascii", "replace")), None, None, None)
    if tag == 0x1A:  # 3 TimeoutInfo{duration, height, round, step}
        _, d, height, rnd, step = _scan(inner, _TIMEOUT_W, _TIMEOUT_D)
        dur = None if d is None else _timestamp_at(d, 0, len(d))
        return WalRecord(ts, "timeout", height, rnd, STEP_NAMES.get(step) or f"unknown_{step}", None, None, dur)
    if tag == 0x22:  # 4 EndHeight{height}
        return WalRecord(ts, "end_height", _scan(inner, _ENDHEIGHT_W, _ENDHEIGHT_D)[1], None, None, None, None, None)
    raise _Unusual


# ---------------------------------------------------------------------------------------------
# Public entry points: fast path first, the generic decoder when the fast path declines.
# ---------------------------------------------------------------------------------------------


def decode_consensus_message(buf: bytes) -> ConsensusMsg:
    """Decode a ``consensus.Message`` (the payload of a consensus-channel p2p message).

    Raises :class:`ProtoError` if the bytes are not a consensus message.
    """
    try:
        return _consensus_fast(buf)
    except _DECLINED:
        return _consensus_generic(buf)


def decode_wal_message(buf: bytes) -> WalRecord:
    """Decode a ``TimedWALMessage`` (the payload of one WAL frame).

    Raises :class:`ProtoError` if the bytes are not a WAL record.
    """
    try:
        return _wal_fast(buf)
    except _DECLINED:
        return _wal_generic(buf)
