"""Protobuf decoding of CometBFT consensus messages and WAL records: the public entry points.

Why hand-written instead of generated code: we need a handful of fields from small messages,
millions of times, with no code generation step and no C extension to build.

Two decoders exist. The generic one (:mod:`.proto_ref`) accepts any field order,
repeated and unknown fields, and is the reference for every result and error. The *fast paths*
here handle only the canonical layout that CometBFT writes and hand anything else to the generic
one; with two small bounded memos (timestamp seconds, repeated vote and proposal bytes) they bring
a WAL record from ~8 µs to ~2 µs in CPython, which matters because a WAL or a debug log holds
millions of these messages.
"""

from __future__ import annotations

from typing import Any

from bftscope.families.cometbft.parse.proto_ref import (
    _I64_MAX,
    _SIGNED_MSG_TYPES,
    _U64,
    MSG_TYPES,
    STEP_NAMES,
    ConsensusMsg,
    ProtoError,
    WalRecord,
    _consensus_generic,
    _wal_generic,
    signed_msg_type,
    step_name,
)

__all__ = [
    "MSG_TYPES",
    "STEP_NAMES",
    "ConsensusMsg",
    "ProtoError",
    "WalRecord",
    "decode_consensus_message",
    "decode_wal_message",
    "read_varint",
    "signed_msg_type",
    "step_name",
]

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
# every result and every error. The fast paths can only change speed; tests/families/cometbft/parse/test_proto.py
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


read_varint = _varint  # for the other WAL framings (amino.py): one varint reader


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
    total, parts_hash = 0, b""
    block_hash = None
    if bid:
        _, h, psh = _scan(bid, _BLOCKID_W, _BLOCKID_D)
        block_hash = h.hex().upper() if h else None
        if psh:
            _, total, parts_hash = _scan(psh, _PSH_W, _PSH_D)
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
        f'{{"pol_round":{pol_round},"parts_total":{total}{_parts_hash(parts_hash)}}}',
    )


def _parts_hash(h: bytes) -> str:
    """The part-set hash as a member of a proposal's ``extra`` (none when the proposal has none): the event
    page's block ids show it (api/eventpage.py)."""
    return f',"parts_hash":"{h.hex().upper()}"' if h else ""


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
