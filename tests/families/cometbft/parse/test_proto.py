"""Tests of the hand-written protobuf decoder (bftscope.families.cometbft.parse.proto).

The reference here is *not* our code: :data:`TM` holds the Tendermint v0.34 protobuf schemas
(``proto/tendermint/{types,consensus,crypto,libs/bits}/*.proto``) built programmatically as
descriptors for the official ``protobuf`` runtime, which encodes test messages and decodes real
WAL records independently of us. The fast paths of proto.py are further checked against its own
generic decoder, which must agree on every input, errors included.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from functools import cache
from typing import Any

import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, duration_pb2, message_factory, timestamp_pb2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bftscope.families.cometbft.parse import proto
from bftscope.families.cometbft.parse.proto import (
    ConsensusMsg,
    ProtoError,
    decode_consensus_message,
    decode_wal_message,
)
from tests.conftest import require_data

# --------------------------------------------------------------------------------------------
# The independent reference: Tendermint v0.34 schemas as descriptors.
# --------------------------------------------------------------------------------------------

_F = descriptor_pb2.FieldDescriptorProto
_SCALARS = {
    "int64": _F.TYPE_INT64,
    "int32": _F.TYPE_INT32,
    "uint32": _F.TYPE_UINT32,
    "uint64": _F.TYPE_UINT64,
    "bool": _F.TYPE_BOOL,
    "bytes": _F.TYPE_BYTES,
    "string": _F.TYPE_STRING,
}

# file name → (package, dependencies, enums {name: [(value name, number)]},
#              messages {name: (is_oneof_holder, [(field, number, type)])}).
# A type is a scalar name, "enum:<full name>" or a message's full name; "repeated " marks lists.
_SCHEMA: dict[str, tuple[str, list[str], dict[str, list[tuple[str, int]]], dict[str, tuple[bool, list[Any]]]]] = {
    "tendermint/crypto/proof.proto": (
        "tendermint.crypto",
        [],
        {},
        {
            "Proof": (
                False,
                [("total", 1, "int64"), ("index", 2, "int64"), ("leaf_hash", 3, "bytes"),
                 ("aunts", 4, "repeated bytes")],
            ),
        },
    ),
    "tendermint/libs/bits/types.proto": (
        "tendermint.libs.bits",
        [],
        {},
        {"BitArray": (False, [("bits", 1, "int64"), ("elems", 2, "repeated uint64")])},
    ),
    "tendermint/types/types.proto": (
        "tendermint.types",
        ["google/protobuf/timestamp.proto", "tendermint/crypto/proof.proto"],
        {
            "SignedMsgType": [
                ("SIGNED_MSG_TYPE_UNKNOWN", 0),
                ("SIGNED_MSG_TYPE_PREVOTE", 1),
                ("SIGNED_MSG_TYPE_PRECOMMIT", 2),
                ("SIGNED_MSG_TYPE_PROPOSAL", 32),
            ]
        },
        {
            "PartSetHeader": (False, [("total", 1, "uint32"), ("hash", 2, "bytes")]),
            "Part": (
                False,
                [("index", 1, "uint32"), ("bytes", 2, "bytes"), ("proof", 3, "tendermint.crypto.Proof")],
            ),
            "BlockID": (False, [("hash", 1, "bytes"), ("part_set_header", 2, "tendermint.types.PartSetHeader")]),
            "Vote": (
                False,
                [("type", 1, "enum:tendermint.types.SignedMsgType"), ("height", 2, "int64"), ("round", 3, "int32"),
                 ("block_id", 4, "tendermint.types.BlockID"), ("timestamp", 5, "google.protobuf.Timestamp"),
                 ("validator_address", 6, "bytes"), ("validator_index", 7, "int32"), ("signature", 8, "bytes")],
            ),
            "Proposal": (
                False,
                [("type", 1, "enum:tendermint.types.SignedMsgType"), ("height", 2, "int64"), ("round", 3, "int32"),
                 ("pol_round", 4, "int32"), ("block_id", 5, "tendermint.types.BlockID"),
                 ("timestamp", 6, "google.protobuf.Timestamp"), ("signature", 7, "bytes")],
            ),
        },
    ),
    "tendermint/types/events.proto": (
        "tendermint.types",
        [],
        {},
        {"EventDataRoundState": (False, [("height", 1, "int64"), ("round", 2, "int32"), ("step", 3, "string")])},
    ),
    "tendermint/consensus/types.proto": (
        "tendermint.consensus",
        ["tendermint/types/types.proto", "tendermint/libs/bits/types.proto"],
        {},
        {
            "NewRoundStep": (
                False,
                [("height", 1, "int64"), ("round", 2, "int32"), ("step", 3, "uint32"),
                 ("seconds_since_start_time", 4, "int64"), ("last_commit_round", 5, "int32")],
            ),
            "NewValidBlock": (
                False,
                [("height", 1, "int64"), ("round", 2, "int32"),
                 ("block_part_set_header", 3, "tendermint.types.PartSetHeader"),
                 ("block_parts", 4, "tendermint.libs.bits.BitArray"), ("is_commit", 5, "bool")],
            ),
            "Proposal": (False, [("proposal", 1, "tendermint.types.Proposal")]),
            "ProposalPOL": (
                False,
                [("height", 1, "int64"), ("proposal_pol_round", 2, "int32"),
                 ("proposal_pol", 3, "tendermint.libs.bits.BitArray")],
            ),
            "BlockPart": (
                False, [("height", 1, "int64"), ("round", 2, "int32"), ("part", 3, "tendermint.types.Part")]
            ),
            "Vote": (False, [("vote", 1, "tendermint.types.Vote")]),
            "HasVote": (
                False,
                [("height", 1, "int64"), ("round", 2, "int32"), ("type", 3, "enum:tendermint.types.SignedMsgType"),
                 ("index", 4, "int32")],
            ),
            "VoteSetMaj23": (
                False,
                [("height", 1, "int64"), ("round", 2, "int32"), ("type", 3, "enum:tendermint.types.SignedMsgType"),
                 ("block_id", 4, "tendermint.types.BlockID")],
            ),
            "VoteSetBits": (
                False,
                [("height", 1, "int64"), ("round", 2, "int32"), ("type", 3, "enum:tendermint.types.SignedMsgType"),
                 ("block_id", 4, "tendermint.types.BlockID"), ("votes", 5, "tendermint.libs.bits.BitArray")],
            ),
            "Message": (
                True,
                [("new_round_step", 1, "tendermint.consensus.NewRoundStep"),
                 ("new_valid_block", 2, "tendermint.consensus.NewValidBlock"),
                 ("proposal", 3, "tendermint.consensus.Proposal"),
                 ("proposal_pol", 4, "tendermint.consensus.ProposalPOL"),
                 ("block_part", 5, "tendermint.consensus.BlockPart"), ("vote", 6, "tendermint.consensus.Vote"),
                 ("has_vote", 7, "tendermint.consensus.HasVote"),
                 ("vote_set_maj23", 8, "tendermint.consensus.VoteSetMaj23"),
                 ("vote_set_bits", 9, "tendermint.consensus.VoteSetBits")],
            ),
        },
    ),
    "tendermint/consensus/wal.proto": (
        "tendermint.consensus",
        ["tendermint/consensus/types.proto", "tendermint/types/events.proto", "google/protobuf/duration.proto",
         "google/protobuf/timestamp.proto"],
        {},
        {
            "MsgInfo": (False, [("msg", 1, "tendermint.consensus.Message"), ("peer_id", 2, "string")]),
            "TimeoutInfo": (
                False,
                [("duration", 1, "google.protobuf.Duration"), ("height", 2, "int64"), ("round", 3, "int32"),
                 ("step", 4, "uint32")],
            ),
            "EndHeight": (False, [("height", 1, "int64")]),
            "WALMessage": (
                True,
                [("event_data_round_state", 1, "tendermint.types.EventDataRoundState"),
                 ("msg_info", 2, "tendermint.consensus.MsgInfo"),
                 ("timeout_info", 3, "tendermint.consensus.TimeoutInfo"),
                 ("end_height", 4, "tendermint.consensus.EndHeight")],
            ),
            "TimedWALMessage": (
                False,
                [("time", 1, "google.protobuf.Timestamp"), ("msg", 2, "tendermint.consensus.WALMessage")],
            ),
        },
    ),
}  # fmt: skip


def _file_proto(name: str) -> descriptor_pb2.FileDescriptorProto:
    package, deps, enums, messages = _SCHEMA[name]
    fd = descriptor_pb2.FileDescriptorProto(name=name, package=package, syntax="proto3", dependency=deps)
    for enum_name, values in enums.items():
        enum = fd.enum_type.add(name=enum_name)
        for value_name, number in values:
            enum.value.add(name=value_name, number=number)
    for msg_name, (is_oneof, fields) in messages.items():
        msg = fd.message_type.add(name=msg_name)
        if is_oneof:
            msg.oneof_decl.add(name="sum")
        for field_name, number, typ in fields:
            field = msg.field.add(name=field_name, number=number, label=_F.LABEL_OPTIONAL)
            if typ.startswith("repeated "):
                field.label = _F.LABEL_REPEATED
                typ = typ.removeprefix("repeated ")
            if typ in _SCALARS:
                field.type = _SCALARS[typ]
            elif typ.startswith("enum:"):
                field.type = _F.TYPE_ENUM
                field.type_name = "." + typ.removeprefix("enum:")
            else:
                field.type = _F.TYPE_MESSAGE
                field.type_name = "." + typ
            if is_oneof:
                field.oneof_index = 0
    return fd


class _Schemas:
    """Message classes of the reference schema: ``TM["tendermint.types.Vote"]()``."""

    def __init__(self) -> None:
        self.pool = descriptor_pool.DescriptorPool()
        for module in (timestamp_pb2, duration_pb2):
            fd = descriptor_pb2.FileDescriptorProto()
            module.DESCRIPTOR.CopyToProto(fd)
            self.pool.Add(fd)
        for name in _SCHEMA:  # dependencies come first in _SCHEMA
            self.pool.Add(_file_proto(name))

    @cache  # noqa: B019 - one instance for the whole session
    def __getitem__(self, full_name: str) -> Any:
        return message_factory.GetMessageClass(self.pool.FindMessageTypeByName(full_name))


TM = _Schemas()

# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------

WAL_DIR = "cometbft/tendermint-v0.34-4node-wal"


def split_frames(data: bytes) -> list[bytes]:
    """Payloads of a well-formed WAL (no corruption handling: for real, intact files)."""
    out = []
    pos = 0
    while pos < len(data):
        _crc, length = struct.unpack_from(">II", data, pos)
        out.append(data[pos + 8 : pos + 8 + length])
        pos += 8 + length
    assert pos == len(data)
    return out


@pytest.fixture(scope="module")
def real_payloads() -> list[bytes]:
    folder = require_data(WAL_DIR)
    out: list[bytes] = []
    for node in range(4):
        out += split_frames((folder / f"node{node}" / "data" / "cs.wal" / "wal").read_bytes())
    return out


def _outcome(fn: Callable[[bytes], Any], buf: bytes) -> Any:
    try:
        return ("ok", fn(buf))
    except ProtoError as exc:
        return ("error", str(exc))


def _ts(msg: Any) -> int:
    return int(msg.seconds) * 1_000_000_000 + int(msg.nanos)


def _vote_message(**fields: Any) -> bytes:
    vote = TM["tendermint.types.Vote"](**fields)
    return bytes(
        TM["tendermint.consensus.Message"](vote=TM["tendermint.consensus.Vote"](vote=vote)).SerializeToString()
    )


# --------------------------------------------------------------------------------------------
# Real records: fast path == generic decoder == protobuf runtime
# --------------------------------------------------------------------------------------------


def test_fast_path_matches_generic_on_real_records(real_payloads: list[bytes]) -> None:
    assert len(real_payloads) == 10_828
    for payload in real_payloads:
        fast = proto._wal_fast(payload)  # the canonical path must take every real record
        assert fast == proto._wal_generic(payload)
        assert decode_wal_message(payload) == fast


def test_real_records_match_protobuf_runtime(real_payloads: list[bytes]) -> None:
    timed_cls = TM["tendermint.consensus.TimedWALMessage"]
    for payload in real_payloads:
        ref = timed_cls.FromString(payload)
        rec = decode_wal_message(payload)
        assert rec.ts == _ts(ref.time)
        which = ref.msg.WhichOneof("sum")
        if which == "msg_info":
            msg = ref.msg.msg_info.msg
            assert rec.kind == "msg_info" and rec.msg is not None
            assert rec.peer == ref.msg.msg_info.peer_id
            member = msg.WhichOneof("sum")
            assert rec.msg.msg_type == member
            if member == "vote":
                v = msg.vote.vote
                assert (rec.msg.height, rec.msg.round, rec.msg.validator_index) == (
                    v.height,
                    v.round,
                    v.validator_index,
                )
                assert rec.msg.vote_type == {1: "prevote", 2: "precommit"}[v.type]
                assert rec.msg.validator == v.validator_address.hex().upper()
                assert rec.msg.signer_ts == _ts(v.timestamp)
                assert rec.msg.block_hash == (v.block_id.hash.hex().upper() or None)
            elif member == "proposal":
                p = msg.proposal.proposal
                assert (rec.msg.height, rec.msg.round, rec.msg.signer_ts) == (p.height, p.round, _ts(p.timestamp))
                assert rec.msg.block_hash == p.block_id.hash.hex().upper()
                psh = p.block_id.part_set_header
                assert rec.msg.extra == (
                    f'{{"pol_round":{p.pol_round},"parts_total":{psh.total},"parts_hash":"{psh.hash.hex().upper()}"}}'
                )
            else:
                bp = msg.block_part
                assert (rec.msg.height, rec.msg.round, rec.msg.part_index) == (bp.height, bp.round, bp.part.index)
                assert rec.msg.extra == f'{{"part_bytes":{len(bp.part.bytes)}}}'
        elif which == "event_data_round_state":
            rs = ref.msg.event_data_round_state
            assert (rec.kind, rec.height, rec.round) == ("round_state", rs.height, rs.round)
            assert rs.step.startswith("RoundStep")
        elif which == "timeout_info":
            ti = ref.msg.timeout_info
            assert (rec.kind, rec.height, rec.round) == ("timeout", ti.height, ti.round)
            assert rec.duration_ns == _ts(ti.duration)
            assert rec.step == proto.STEP_NAMES[ti.step]
        else:
            assert which == "end_height"
            assert (rec.kind, rec.height) == ("end_height", ref.msg.end_height.height)


# --------------------------------------------------------------------------------------------
# Messages encoded by the protobuf runtime
# --------------------------------------------------------------------------------------------

int64s = st.integers(min_value=-(2**63), max_value=2**63 - 1)
int32s = st.integers(min_value=-(2**31), max_value=2**31 - 1)
small = st.integers(min_value=0, max_value=300)
seconds = st.one_of(st.integers(min_value=0, max_value=2**40), int64s.map(lambda s: s // 1_000_000_000))
nanos = st.integers(min_value=0, max_value=999_999_999)


@settings(max_examples=200, deadline=None)
@given(
    vtype=st.sampled_from([0, 1, 2, 32]),
    height=st.one_of(small, int64s),
    rnd=st.one_of(small, int32s),
    index=st.one_of(small, int32s),
    address=st.binary(max_size=32),
    block_hash=st.binary(max_size=40),
    total=st.integers(min_value=0, max_value=2**32 - 1),
    secs=seconds,
    ns=nanos,
    with_time=st.booleans(),
)
def test_vote_matches_protobuf_runtime(
    vtype: int,
    height: int,
    rnd: int,
    index: int,
    address: bytes,
    block_hash: bytes,
    total: int,
    secs: int,
    ns: int,
    with_time: bool,
) -> None:
    fields: dict[str, Any] = dict(
        type=vtype,
        height=height,
        round=rnd,
        validator_index=index,
        validator_address=address,
        signature=b"\x01" * 64,
        block_id=TM["tendermint.types.BlockID"](
            hash=block_hash, part_set_header=TM["tendermint.types.PartSetHeader"](total=total, hash=block_hash)
        ),
    )
    if with_time:
        fields["timestamp"] = TM["google.protobuf.Timestamp"](seconds=secs, nanos=ns)
    buf = _vote_message(**fields)
    got = decode_consensus_message(buf)
    assert got == proto._consensus_generic(buf)
    assert got.msg_type == "vote"
    assert (got.height, got.round, got.validator_index) == (height, rnd, index)
    assert got.vote_type == {0: "unknown_0", 1: "prevote", 2: "precommit", 32: "proposal"}[vtype]
    assert got.validator == (address.hex().upper() or None)
    assert got.block_hash == (block_hash.hex().upper() or None)
    assert got.signer_ts == (secs * 1_000_000_000 + ns if with_time else None)


@settings(max_examples=100, deadline=None)
@given(
    height=int64s,
    rnd=int32s,
    step=st.text(alphabet="RoundStepPrevoteWaitCommitx", max_size=24),
    secs=seconds,
    ns=nanos,
    dur_s=int64s.map(lambda s: s // 1_000_000_000),
    dur_ns=st.integers(min_value=-999_999_999, max_value=999_999_999),
    tstep=st.integers(min_value=0, max_value=2**32 - 1),
)
def test_wal_records_match_protobuf_runtime(
    height: int, rnd: int, step: str, secs: int, ns: int, dur_s: int, dur_ns: int, tstep: int
) -> None:
    wal, timed = TM["tendermint.consensus.WALMessage"], TM["tendermint.consensus.TimedWALMessage"]
    time = TM["google.protobuf.Timestamp"](seconds=secs, nanos=ns)
    members = [
        wal(event_data_round_state=TM["tendermint.types.EventDataRoundState"](height=height, round=rnd, step=step)),
        wal(
            timeout_info=TM["tendermint.consensus.TimeoutInfo"](
                duration=TM["google.protobuf.Duration"](seconds=dur_s, nanos=dur_ns),
                height=height,
                round=rnd,
                step=tstep,
            )
        ),
        wal(end_height=TM["tendermint.consensus.EndHeight"](height=height)),
    ]
    for member in members:
        buf = bytes(timed(time=time, msg=member).SerializeToString())
        rec = decode_wal_message(buf)
        assert rec == proto._wal_generic(buf)
        assert rec.ts == secs * 1_000_000_000 + ns
        assert rec.height == height
    assert decode_wal_message(bytes(timed(time=time, msg=members[1]).SerializeToString())).duration_ns == (
        dur_s * 1_000_000_000 + dur_ns
    )


def test_other_consensus_members() -> None:
    msg = TM["tendermint.consensus.Message"]
    has_vote = msg(has_vote=TM["tendermint.consensus.HasVote"](height=7, round=1, type=2, index=3))
    got = decode_consensus_message(bytes(has_vote.SerializeToString()))
    assert got == ConsensusMsg("has_vote", 7, 1, "precommit", None, 3)
    nrs = msg(new_round_step=TM["tendermint.consensus.NewRoundStep"](height=9, round=0, step=4, last_commit_round=-1))
    got = decode_consensus_message(bytes(nrs.SerializeToString()))
    assert got == ConsensusMsg("new_round_step", 9, 0, step="prevote", extra='{"last_commit_round":-1}')
    nvb = msg(
        new_valid_block=TM["tendermint.consensus.NewValidBlock"](
            height=5, round=2, block_part_set_header=TM["tendermint.types.PartSetHeader"](total=1, hash=b"\xab" * 32),
            is_commit=True,
        )
    )  # fmt: skip
    got = decode_consensus_message(bytes(nvb.SerializeToString()))
    assert got == ConsensusMsg("new_valid_block", 5, 2, block_hash="AB" * 32, extra='{"is_commit":true}')


# --------------------------------------------------------------------------------------------
# Non-canonical and broken input: the fast path declines, results stay those of the generic
# decoder, and nothing but ProtoError is raised.
# --------------------------------------------------------------------------------------------


def _field_bytes(message: Any) -> list[bytes]:
    """Each set field of ``message`` serialized on its own (their concatenation is ``message``)."""
    out = []
    for desc, value in message.ListFields():
        single = type(message)()
        if desc.message_type is not None:
            getattr(single, desc.name).CopyFrom(value)
        else:
            setattr(single, desc.name, value)
        out.append(bytes(single.SerializeToString()))
    return out


@settings(max_examples=50, deadline=None)
@given(order=st.permutations(list(range(8))))
def test_any_field_order_decodes_the_same(order: list[int]) -> None:
    vote = TM["tendermint.types.Vote"](
        type=1, height=12, round=3, validator_index=2, validator_address=b"\x11" * 20, signature=b"\x02" * 64,
        timestamp=TM["google.protobuf.Timestamp"](seconds=1_681_380_541, nanos=5),
        block_id=TM["tendermint.types.BlockID"](hash=b"\x33" * 32),
    )  # fmt: skip
    parts = _field_bytes(vote)
    assert len(parts) == 8
    shuffled = b"".join(parts[i] for i in order)
    # Wrap the shuffled bytes by hand: the runtime would re-sort the fields.
    wrapper = b"\x0a" + _varint(len(shuffled)) + shuffled
    message = b"\x32" + _varint(len(wrapper)) + wrapper
    canonical = _vote_message(**{d.name: v for d, v in vote.ListFields()})
    assert decode_consensus_message(message) == decode_consensus_message(canonical)


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def test_vote_extension_and_unknown_fields() -> None:
    base = TM["tendermint.types.Vote"](type=2, height=3, validator_address=b"\x01" * 20)
    raw = bytes(base.SerializeToString())
    # v0.38 vote extension (field 9) and its signature (field 10).
    ext = raw + b"\x4a\x03abc" + b"\x52\x02xy"
    wrapped = b"\x32" + _varint(len(ext) + 2) + b"\x0a" + _varint(len(ext)) + ext
    got = decode_consensus_message(wrapped)
    assert got.extra == '{"extension_bytes":3}'
    assert got == proto._consensus_generic(wrapped)
    # An unknown field (number 20, a two-byte tag) is skipped by the generic decoder.
    unknown = raw + b"\xa0\x01\x05"
    wrapped = b"\x32" + _varint(len(unknown) + 2) + b"\x0a" + _varint(len(unknown)) + unknown
    assert decode_consensus_message(wrapped) == proto._consensus_generic(wrapped)
    assert decode_consensus_message(wrapped).height == 3


def test_bytearray_input() -> None:
    buf = _vote_message(type=1, height=4, validator_address=b"\x07" * 20)
    assert decode_consensus_message(bytearray(buf)) == decode_consensus_message(buf)


@pytest.mark.parametrize(
    "buf",
    [b"", b"\x00", b"\x32", b"\x32\x05\x0a", b"\x32\x02\x0a\x05", b"\x08" + b"\xff" * 11, b"\x0b", b"\x62\x00"],
)
def test_broken_consensus_messages_raise_proto_error(buf: bytes) -> None:
    with pytest.raises(ProtoError):
        decode_consensus_message(buf)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_mutated_real_records_agree_with_generic(data: st.DataObject, real_payloads: list[bytes]) -> None:
    payload = bytearray(data.draw(st.sampled_from(real_payloads[:400])))
    for _ in range(data.draw(st.integers(min_value=1, max_value=4))):
        op = data.draw(st.sampled_from(["flip", "cut", "insert", "delete"]))
        at = data.draw(st.integers(min_value=0, max_value=max(0, len(payload) - 1)))
        if op == "flip" and payload:
            payload[at] ^= 1 << data.draw(st.integers(min_value=0, max_value=7))
        elif op == "cut":
            del payload[at:]
        elif op == "insert":
            payload[at:at] = data.draw(st.binary(min_size=1, max_size=4))
        elif payload:
            del payload[at]
    buf = bytes(payload)
    assert _outcome(decode_wal_message, buf) == _outcome(proto._wal_generic, buf)


@settings(max_examples=300, deadline=None)
@given(buf=st.binary(max_size=64))
def test_random_bytes_raise_only_proto_error(buf: bytes) -> None:
    assert _outcome(decode_wal_message, buf) == _outcome(proto._wal_generic, buf)
    assert _outcome(decode_consensus_message, buf) == _outcome(proto._consensus_generic, buf)


def test_memos_stay_bounded() -> None:
    for i in range(proto._MEMO_MAX + 10):
        buf = _vote_message(type=1, height=i + 1)
        assert proto._consensus_memo(buf) == decode_consensus_message(buf)
    assert 0 < len(proto._memo) <= proto._MEMO_MAX
    assert len(proto._seconds) <= proto._SECONDS_MAX


def test_schema_files_are_complete() -> None:
    # Every type a field refers to resolves in the pool (Add would have failed otherwise) and the
    # WAL envelope has the v0.34 layout.
    timed = TM.pool.FindMessageTypeByName("tendermint.consensus.TimedWALMessage")
    assert [f.number for f in timed.fields] == [1, 2]
