"""Tests of the WAL format (bftscope.families.cometbft.parse.wal) on the real 4-node Tendermint v0.34 WALs and
on damaged input.

Expected rows are built from each real record by the official ``protobuf`` runtime with the
Tendermint v0.34 schemas (see :data:`tests.families.cometbft.parse.test_proto.TM`), independently of our
decoder, and compared row by row with what :class:`WalFormat` emits. The per-node figures were
derived that way and are also written out below, so a regression shared by both decoders (or a
change of the data) is caught too.
"""

from __future__ import annotations

import io
import json
import random
import re
import struct
import time
from collections import Counter
from functools import cache
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from crc32c import crc32c
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bftscope.families.cometbft.kinds import ALL_KINDS
from bftscope.families.cometbft.parse import wal as walmod
from bftscope.families.cometbft.parse.wal import CHUNK_BYTES, MAX_RECORD_BYTES, WalFormat, iter_frames
from bftscope.ingest.parsereport import ParseReport
from bftscope.ingest.source import FileFormat
from bftscope.model import ROW_COLUMNS, ROW_SCHEMA
from tests.conftest import require_data
from tests.families.cometbft.parse.test_proto import TM, WAL_DIR, split_frames

FMT = WalFormat()

# Verified with the protobuf-runtime decoder below (test_real_wal_matches_independent_decoder).
FIGURES: dict[int, dict[str, int]] = {
    0: dict(records=2691, received_votes=1639, received_prevotes=531, received_precommits=1108, own_votes=154,
            received_proposals=161, own_proposals=19, received_block_parts=160, own_block_parts=19,
            round_states=384, timeouts=77, end_heights=78, peers=3),
    1: dict(records=2741, received_votes=1677, received_prevotes=549, received_precommits=1128, own_votes=154,
            received_proposals=166, own_proposals=19, received_block_parts=167, own_block_parts=19,
            round_states=384, timeouts=77, end_heights=78, peers=3),
    2: dict(records=2703, received_votes=1652, received_prevotes=527, received_precommits=1125, own_votes=154,
            received_proposals=159, own_proposals=19, received_block_parts=161, own_block_parts=19,
            round_states=384, timeouts=77, end_heights=78, peers=3),
    3: dict(records=2693, received_votes=1633, received_prevotes=548, received_precommits=1085, own_votes=154,
            received_proposals=164, own_proposals=20, received_block_parts=163, own_block_parts=20,
            round_states=384, timeouts=77, end_heights=78, peers=3),
}  # fmt: skip
FILE_SIZES = {0: 702_932, 1: 721_611, 2: 707_502, 3: 706_700}

# RoundStepType numbers (consensus/types/round_state.go), for TimeoutInfo.step.
_STEP_BY_NUMBER = {1: "new_height", 2: "new_round", 3: "propose", 4: "prevote", 5: "prevote_wait",
                   6: "precommit", 7: "precommit_wait", 8: "commit"}  # fmt: skip
_VOTE_TYPES = {1: "prevote", 2: "precommit"}


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def _wal_path(folder: Path, node: int) -> Path:
    return folder / f"node{node}" / "data" / "cs.wal" / "wal"


@pytest.fixture(scope="module")
def wal_bytes() -> dict[int, bytes]:
    folder = require_data(WAL_DIR)
    return {node: _wal_path(folder, node).read_bytes() for node in range(4)}


def frame(payload: bytes, *, crc: int | None = None, length: int | None = None) -> bytes:
    return struct.pack(">II", crc32c(payload) if crc is None else crc, len(payload) if length is None else length) + (
        payload
    )


def frame_offsets(data: bytes) -> list[int]:
    out, pos = [], 0
    while pos < len(data):
        out.append(pos)
        pos += 8 + struct.unpack_from(">I", data, pos + 4)[0]
    return out


def parse(data: bytes, **kwargs: Any) -> tuple[list[tuple[Any, ...]], ParseReport]:
    """The rows of the WAL's records, and the report with ``events`` counting those rows. The events the parser
    derives from the records (block_complete, timeout_scheduled: ``extra.derived_from``) are left out of both:
    tests/families/cometbft/parse/test_wal_derived.py checks them."""
    report = ParseReport()
    tables = list(FMT.parse(io.BytesIO(data), report, **kwargs))
    for table in tables:
        assert table.schema.equals(ROW_SCHEMA)
    every = [r for t in tables for r in t.to_pylist()]
    rows = [tuple(r[c] for c in ROW_COLUMNS) for r in every if not _derived(r)]
    assert report.events == len(every)
    report.events = len(rows)
    return rows, report


def _derived(row: dict[str, Any]) -> bool:
    return row["kind"] in ("block_complete", "timeout_scheduled") and '"derived_from"' in (row["extra"] or "")


def _ts(msg: Any) -> int:
    return int(msg.seconds) * 1_000_000_000 + int(msg.nanos)


def _snake(round_step: str) -> str:
    """RoundStepPrevoteWait → prevote_wait."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", round_step.removeprefix("RoundStep")).lower()


def expected_rows(data: bytes) -> list[tuple[Any, ...]]:
    """Rows for a WAL, decoded with the protobuf runtime (never with bftscope's decoder)."""
    timed = TM["tendermint.consensus.TimedWALMessage"]
    rows = []
    for seq, payload in enumerate(split_frames(data)):
        rec = timed.FromString(payload)
        ts = _ts(rec.time)
        which = rec.msg.WhichOneof("sum")
        row: dict[str, Any] = dict.fromkeys(ROW_COLUMNS)
        row.update(ts=ts, seq=seq)
        if which == "event_data_round_state":
            rs = rec.msg.event_data_round_state
            row.update(kind="step", height=rs.height, round=rs.round, step=_snake(rs.step))
        elif which == "timeout_info":
            ti = rec.msg.timeout_info
            row.update(kind="timeout_fired", height=ti.height, round=ti.round, step=_STEP_BY_NUMBER[ti.step])
            d = _ts(ti.duration)  # a timeout due in the past waited 0 ns, the rest is how overdue it was
            row["extra"] = {"duration_ns": d} if d >= 0 else {"duration_ns": 0, "overdue_ns": -d}
        elif which == "end_height":
            row.update(kind="height_end", height=rec.msg.end_height.height)
        else:
            info = rec.msg.msg_info
            member = info.msg.WhichOneof("sum")
            row.update(kind="msg_received" if info.peer_id else "msg_internal", peer=info.peer_id or None)
            row.update(msg_type=member, size=len(payload))
            if member == "vote":
                v = info.msg.vote.vote
                row.update(height=v.height, round=v.round, vote_type=_VOTE_TYPES[v.type],
                           validator=v.validator_address.hex().upper(), validator_index=v.validator_index,
                           block_hash=v.block_id.hash.hex().upper() or None, signer_ts=_ts(v.timestamp))  # fmt: skip
            elif member == "proposal":
                p = info.msg.proposal.proposal
                row.update(height=p.height, round=p.round, block_hash=p.block_id.hash.hex().upper() or None,
                           signer_ts=_ts(p.timestamp))  # fmt: skip
                psh = p.block_id.part_set_header
                row["extra"] = {"pol_round": p.pol_round, "parts_total": psh.total,
                                "parts_hash": psh.hash.hex().upper()}  # fmt: skip
            else:
                assert member == "block_part"
                bp = info.msg.block_part
                row.update(height=bp.height, round=bp.round, part_index=bp.part.index)
                row["extra"] = {"part_bytes": len(bp.part.bytes)}
        rows.append(tuple(row[c] for c in ROW_COLUMNS))
    return rows


_EXTRA = ROW_COLUMNS.index("extra")
_SEQ = ROW_COLUMNS.index("seq")


def _json_extra(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    return [(*r[:_EXTRA], json.loads(r[_EXTRA]) if r[_EXTRA] else None, *r[_EXTRA + 1 :]) for r in rows]


def figures(rows: list[tuple[Any, ...]]) -> dict[str, int]:
    col = {name: i for i, name in enumerate(ROW_COLUMNS)}
    c = Counter((r[col["kind"]], r[col["msg_type"]], r[col["vote_type"]]) for r in rows)

    def count(kind: str, msg_type: str | None = None, vote_type: str | None = None) -> int:
        return sum(n for (k, m, v), n in c.items() if k == kind and msg_type in (None, m) and vote_type in (None, v))

    return dict(
        records=len(rows),
        received_votes=count("msg_received", "vote"),
        received_prevotes=count("msg_received", "vote", "prevote"),
        received_precommits=count("msg_received", "vote", "precommit"),
        own_votes=count("msg_internal", "vote"),
        received_proposals=count("msg_received", "proposal"),
        own_proposals=count("msg_internal", "proposal"),
        received_block_parts=count("msg_received", "block_part"),
        own_block_parts=count("msg_internal", "block_part"),
        round_states=count("step"),
        timeouts=count("timeout_fired"),
        end_heights=count("height_end"),
        peers=len({r[col["peer"]] for r in rows if r[col["peer"]]}),
    )


def _payload(seconds: int, wal_member: bytes) -> bytes:
    """A TimedWALMessage by hand: time {seconds} and one WALMessage member."""
    ts = b"\x08" + _varint(seconds)
    return b"\x0a" + _varint(len(ts)) + ts + b"\x12" + _varint(len(wal_member)) + wal_member


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if not value:
            out.append(byte)
            return bytes(out)
        out.append(byte | 0x80)


# EndHeight{height: 5}, EventDataRoundState{height 5, round 2**40 (does not fit int32), "RoundStepPropose"}
END_HEIGHT_5 = _payload(1_681_380_541, b"\x22\x02\x08\x05")
_HUGE_ROUND_STATE = b"\x08\x05\x10" + _varint(2**40) + b"\x1a\x10RoundStepPropose"
HUGE_ROUND = _payload(1_681_380_541, b"\x0a" + _varint(len(_HUGE_ROUND_STATE)) + _HUGE_ROUND_STATE)


# --------------------------------------------------------------------------------------------
# Real data
# --------------------------------------------------------------------------------------------


def test_wal_format_is_a_file_format() -> None:
    fmt: FileFormat = FMT
    assert (fmt.name, fmt.splittable) == ("cometbft-wal", False)


@pytest.mark.parametrize("node", range(4))
def test_real_wal_matches_independent_decoder(node: int, wal_bytes: dict[int, bytes]) -> None:
    data = wal_bytes[node]
    assert len(data) == FILE_SIZES[node]
    want = expected_rows(data)
    got, report = parse(data)
    # Row by row, every column (extra compared as JSON).
    assert _json_extra(got) == want
    assert figures(want) == FIGURES[node]
    # Events: the records, plus one block_complete per height (1..77) and a timeout_scheduled per timeout
    # that fired on time (all but the WAL's first and the one after the restart: overdue, counted in a warning).
    assert report.lines == report.events == FIGURES[node]["records"]
    full = ParseReport()
    assert sum(t.num_rows for t in FMT.parse(io.BytesIO(data), full)) == full.events
    assert full.events == FIGURES[node]["records"] + 77 + FIGURES[node]["timeouts"] - 2
    assert report.bytes_read == len(data)
    assert not report.skipped and len(report.warnings) == 1 and report.warnings[0].startswith("2 overdue timeout")
    heights = [r[ROW_COLUMNS.index("height")] for r in want]
    assert (min(heights), max(heights)) == (0, 77)  # EndHeight{0} opens the WAL; heights 1..77 follow
    consensus = [r[ROW_COLUMNS.index("height")] for r in want if r[1] != "height_end"]
    assert (min(consensus), max(consensus)) == (1, 77)
    assert {r[ROW_COLUMNS.index("round")] for r in want if r[1] == "step"} == {0}  # every height decided in round 0


def test_real_wal_batches(wal_bytes: dict[int, bytes]) -> None:
    data = wal_bytes[1]
    report = ParseReport()
    tables = list(FMT.parse(io.BytesIO(data), report, batch_rows=1000))
    sizes = [t.num_rows for t in tables]
    # A record and the event derived from it go into the same batch, which may then hold one row more.
    assert len(sizes) == 3 and all(1000 <= n <= 1001 for n in sizes[:2]) and sum(sizes) == 2741 + 77 + 75
    whole, _ = parse(data)
    assert [tuple(r.values()) for r in pa.concat_tables(tables).to_pylist() if not _derived(r)] == whole
    assert report.events == sum(sizes)


def test_identity_from_own_votes(wal_bytes: dict[int, bytes]) -> None:
    folder = require_data(WAL_DIR)
    found = []
    for node in range(4):
        genesis = json.loads((folder / f"node{node}" / "config" / "genesis.json").read_text())
        addresses = {v["name"]: v["address"] for v in genesis["validators"]}
        ident = FMT.identity(io.BytesIO(wal_bytes[node]), 1 << 20)
        assert ident.validator in addresses.values()
        assert ident.validator == addresses[f"node{node}"]  # genesis names the validators after the nodes
        assert ident.p2p_id is None
        assert ident.evidence == ["WAL own vote"]
        # The independent decoder agrees: every vote without a peer id is signed by that address.
        own = {r[7] for r in expected_rows(wal_bytes[node]) if r[1] == "msg_internal" and r[6] == "vote"}
        assert own == {ident.validator}
        found.append(ident.validator)
    assert len(set(found)) == 4


def test_identity_is_bounded_and_survives_damage(wal_bytes: dict[int, bytes]) -> None:
    data = wal_bytes[0]
    assert FMT.identity(io.BytesIO(data), 100).validator is None  # no own vote in the first 100 bytes
    damaged = random.Random(1).randbytes(5000) + data
    assert FMT.identity(io.BytesIO(damaged), 1 << 20).validator == "5917B48A13EFF68A47E9C309518DEB3E648749EE"
    assert FMT.identity(io.BytesIO(b""), 1 << 20).validator is None


def test_sniff(wal_bytes: dict[int, bytes]) -> None:
    folder = require_data(WAL_DIR)
    for data in wal_bytes.values():
        assert FMT.sniff(data[:65536])
        assert FMT.sniff(data[:26])  # the first frame (EndHeight{0}) is 8 + 18 bytes
        assert not FMT.sniff(data[:20])  # a short file cut inside its first record
        assert not FMT.sniff(data[:7])
    log = (folder / "node0" / "tendermint.log").read_bytes()[:65536]
    assert not FMT.sniff(log)
    assert not FMT.sniff(b'{"level":"info","module":"consensus","msg":"Timed out"}\n' * 100)
    assert not FMT.sniff(b"")
    rng = random.Random(7)
    assert not any(FMT.sniff(rng.randbytes(n)) for n in (8, 100, 4096, 65536) for _ in range(50))
    # CRC must match and the payload must decode.
    first = wal_bytes[0][:26]
    assert not FMT.sniff(first[:4] + first[4:8] + b"\x00" + first[9:])
    assert not FMT.sniff(frame(b"\x00\x01\x02"))


def test_sniff_accepts_a_first_record_longer_than_the_head() -> None:
    # A record holding a 64 KiB block part does not fit the 64 KiB sniff window.
    part = b"\x08\x00\x12" + _varint(70_000) + b"\xab" * 70_000
    bp = b"\x08\x05\x1a" + _varint(len(part)) + part
    msg = b"\x2a" + _varint(len(bp)) + bp
    info = b"\x0a" + _varint(len(msg)) + msg
    payload = _payload(1_681_380_541, b"\x12" + _varint(len(info)) + info)
    data = frame(payload)
    assert FMT.sniff(data[:65536])
    rows, _ = parse(data)
    assert [(r[1], r[6], r[ROW_COLUMNS.index("part_index")]) for r in rows] == [("msg_internal", "block_part", 0)]
    assert not FMT.sniff(frame(b"\x0a" * len(payload))[:65536])


# --------------------------------------------------------------------------------------------
# Damaged input
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def node0() -> tuple[bytes, list[tuple[Any, ...]], list[int]]:
    data = _wal_path(require_data(WAL_DIR), 0).read_bytes()
    rows, report = parse(data)
    assert not report.skipped
    return data, rows, frame_offsets(data)


def test_bad_crc_loses_exactly_one_record(node0: tuple[bytes, list[Any], list[int]]) -> None:
    data, rows, offsets = node0
    k = 1000
    damaged = bytearray(data)
    damaged[offsets[k] + 20] ^= 0x10
    got, report = parse(bytes(damaged))
    assert got == rows[:k] + rows[k + 1 :]  # later records keep their seq
    assert report.skipped == Counter({"bad CRC": 1})
    assert report.examples == [f"offset {offsets[k]}: bad CRC: {bytes(damaged[offsets[k] : offsets[k] + 32])!r}"]
    assert report.lines == len(rows) and report.events == len(rows) - 1


def test_bad_crc_field(node0: tuple[bytes, list[Any], list[int]]) -> None:
    data, rows, offsets = node0
    damaged = bytearray(data)
    damaged[offsets[5]] ^= 0xFF  # the stored CRC itself
    got, report = parse(bytes(damaged))
    assert got == rows[:5] + rows[6:]
    assert report.skipped == Counter({"bad CRC": 1})


def test_adjacent_bad_records_keep_later_ordinals(node0: tuple[bytes, list[Any], list[int]]) -> None:
    data, rows, offsets = node0
    damaged = bytearray(data)
    for k in (300, 301, 302, 900):
        damaged[offsets[k] + 12] ^= 0x01  # payload rot, frame lengths intact
    got, report = parse(bytes(damaged))
    assert got == rows[:300] + rows[303:900] + rows[901:]
    assert report.skipped == Counter({"bad CRC": 4})
    assert report.examples[:3] == [
        f"offset {offsets[300]}: bad CRC: {bytes(damaged[offsets[300] : offsets[300] + 32])!r}",
        f"offset {offsets[301]}: bad CRC",
        f"offset {offsets[302]}: bad CRC",
    ]
    assert report.lines == len(rows)


def test_truncated_last_record(node0: tuple[bytes, list[Any], list[int]]) -> None:
    data, rows, offsets = node0
    got, report = parse(data[:-10])
    assert got == rows[:-1]
    assert report.skipped == Counter({"truncated record": 1})
    assert report.examples[0].startswith(f"offset {offsets[-1]}: truncated record")
    assert report.lines == len(rows)
    # Cut inside the header of the last record.
    got, report = parse(data[: offsets[-1] + 5])
    assert got == rows[:-1] and report.skipped == Counter({"truncated record": 1})


@pytest.mark.parametrize("garbage_len", [1, 7, 8, 100, 5000, CHUNK_BYTES + 123])
def test_garbage_between_records_resyncs(garbage_len: int, node0: tuple[bytes, list[Any], list[int]]) -> None:
    data, rows, offsets = node0
    k = 700
    garbage = random.Random(garbage_len).randbytes(garbage_len)
    damaged = data[: offsets[k]] + garbage + data[offsets[k] :]
    got, report = parse(damaged)
    shifted = [(*r[:_SEQ], r[_SEQ] + 1, *r[_SEQ + 1 :]) for r in rows[k:]]  # the garbage counts as one record
    assert got == rows[:k] + shifted
    assert report.skipped_total == 1
    assert set(report.skipped) <= {"bad CRC", "bad length", "truncated record"}
    assert report.examples[0].startswith(f"offset {offsets[k]}: ")
    assert report.lines == len(rows) + 1


def test_garbage_at_the_end(node0: tuple[bytes, list[Any], list[int]]) -> None:
    data, rows, _ = node0
    got, report = parse(data + b"\x00\x00\x00\x00\x00\x00\x01\x00" + b"junk")
    assert got == rows and report.skipped_total == 1


def test_huge_length_field(node0: tuple[bytes, list[Any], list[int]]) -> None:
    data, rows, offsets = node0
    k = 10
    damaged = data[: offsets[k]] + b"\x12\x34\x56\x78\xff\xff\xff\xff" + data[offsets[k] :]
    got, report = parse(damaged)
    assert len(got) == len(rows)
    assert report.skipped == Counter({"bad length": 1})
    # A whole file made of such headers: one corrupt region, nothing else.
    got, report = parse(b"\xff" * 4096)
    assert got == [] and report.skipped == Counter({"bad length": 1}) and report.lines == 1


def test_zero_and_oversized_lengths() -> None:
    good = frame(END_HEIGHT_5)
    got, report = parse(frame(b"", length=0) + good)
    assert [r[1] for r in got] == ["height_end"] and report.skipped == Counter({"bad length": 1})
    too_big = b"\x00" * (MAX_RECORD_BYTES + 1)
    got, report = parse(frame(too_big) + good)
    assert [r[1] for r in got] == ["height_end"] and report.skipped == Counter({"bad length": 1})
    assert got[0][_SEQ] == 1


def test_largest_allowed_frame_is_read() -> None:
    # Exactly 1 MiB with a matching CRC: framed fine, then refused by the decoder.
    big = b"\x0a\x00" + b"\x00" * (MAX_RECORD_BYTES - 2)
    got, report = parse(frame(big) + frame(END_HEIGHT_5))
    assert [r[1] for r in got] == ["height_end"]
    assert report.skipped == Counter({"undecodable record": 1})
    assert report.examples[0].startswith("offset 0: undecodable record")


def test_undecodable_and_out_of_range_records() -> None:
    data = frame(END_HEIGHT_5) + frame(b"\x0a\x02\x08") + frame(HUGE_ROUND) + frame(END_HEIGHT_5)
    got, report = parse(data)
    assert [(r[1], r[2], r[_SEQ]) for r in got] == [("height_end", 5, 0), ("height_end", 5, 3)]
    assert report.skipped == Counter({"undecodable record": 1, "value out of range": 1})
    assert report.lines == 4 and report.events == 2
    assert any(e.startswith("record 2: value out of range") for e in report.examples)


def test_empty_file() -> None:
    got, report = parse(b"")
    assert got == [] and report.warnings == ["empty file"]
    assert report.lines == report.events == report.bytes_read == 0 and not report.skipped


def test_pure_random_bytes() -> None:
    data = random.Random(42).randbytes(300_000)
    started = time.perf_counter()
    got, report = parse(data)
    assert time.perf_counter() - started < 5
    assert got == []
    assert report.lines == report.skipped_total >= 1
    assert report.bytes_read == len(data)


def test_end_bound_and_start(node0: tuple[bytes, list[Any], list[int]]) -> None:
    data, rows, offsets = node0
    got, _ = parse(data, end=offsets[50])
    assert got == rows[:50]
    got, _ = parse(data, end=offsets[50] + 1)  # a record that begins before end is read whole
    assert got == rows[:51]
    # start: offsets are reported from it.
    frames = list(iter_frames(io.BytesIO(data[offsets[3] :]), ParseReport(), start=offsets[3]))
    assert frames[0][1] == offsets[3]


class _Trickle(io.RawIOBase):
    """A stream returning at most ``step`` bytes per read, like a pipe."""

    def __init__(self, data: bytes, step: int) -> None:
        self._data = memoryview(data)
        self._pos = 0
        self._step = step

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        n = self._step if size < 0 else min(size, self._step)
        out = bytes(self._data[self._pos : self._pos + n])
        self._pos += len(out)
        return out


@pytest.mark.parametrize("chunk", [1, 3, 8, 9, 64, 1000])
def test_chunk_boundaries_do_not_matter(chunk: int, node0: tuple[bytes, list[Any], list[int]]) -> None:
    data, _, offsets = node0
    sample = data[: offsets[60]]
    damaged = bytearray(sample[:3000] + b"\x00\x00\x00\x00\x00\x00\x10" + sample[3000:])
    damaged[offsets[40] + 30] ^= 1
    reference = ParseReport()
    want = list(iter_frames(io.BytesIO(bytes(damaged)), reference))
    report = ParseReport()
    got = list(iter_frames(io.BytesIO(bytes(damaged)), report, chunk_bytes=chunk))
    assert got == want
    assert (report.lines, report.skipped, report.examples) == (reference.lines, reference.skipped, reference.examples)
    assert reference.skipped_total == 2
    # Short reads from the stream are as good as small chunks.
    report = ParseReport()
    tables = list(FMT.parse(_Trickle(bytes(damaged), chunk), report))  # type: ignore[arg-type]
    assert sum(not _derived(r) for t in tables for r in t.to_pylist()) == len(want)
    whole = FMT.parse(io.BytesIO(bytes(damaged)), ParseReport())
    assert [t.to_pylist() for t in tables] == [t.to_pylist() for t in whole]


def test_memory_stays_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    sizes: list[int] = []
    original = walmod._FrameReader.refill

    def refill(self: Any, keep: int) -> None:
        original(self, keep)
        sizes.append(len(self.buf))

    monkeypatch.setattr(walmod._FrameReader, "refill", refill)
    # 3 MiB of garbage with frame headers of the largest sane length planted near each chunk end
    # (so the reader must hold a candidate frame across reads), then one good record.
    junk = bytearray(random.Random(3).randbytes(3 * CHUNK_BYTES))
    for at in (CHUNK_BYTES - 10, 2 * CHUNK_BYTES - 100, 3 * CHUNK_BYTES - 20):
        junk[at : at + 8] = b"\x01\x02\x03\x04" + MAX_RECORD_BYTES.to_bytes(4, "big")
    started = time.perf_counter()
    got, report = parse(bytes(junk) + frame(END_HEIGHT_5))
    assert time.perf_counter() - started < 5
    assert [r[1] for r in got] == ["height_end"] and report.skipped_total == 1
    assert max(sizes) <= 8 + MAX_RECORD_BYTES + CHUNK_BYTES


def test_zero_filled_tail_is_skipped_fast(node0: tuple[bytes, list[Any], list[int]]) -> None:
    data, rows, _ = node0
    started = time.perf_counter()
    got, report = parse(data + bytes(4 * CHUNK_BYTES))
    assert time.perf_counter() - started < 5
    assert got == rows and report.skipped == Counter({"bad length": 1})


# --------------------------------------------------------------------------------------------
# Properties: any input parses without raising, every record is either a row or a skip.
# --------------------------------------------------------------------------------------------


def _check_accounting(rows: list[tuple[Any, ...]], report: ParseReport) -> None:
    assert all(r[1] in ALL_KINDS for r in rows)
    assert report.events == len(rows)
    assert report.lines == len(rows) + report.skipped_total
    seqs = [r[_SEQ] for r in rows]
    assert seqs == sorted(set(seqs)) and all(0 <= s < report.lines for s in seqs)


@settings(max_examples=150, deadline=None)
@given(data=st.binary(max_size=2000))
def test_random_bytes_never_raise(data: bytes) -> None:
    rows, report = parse(data)
    _check_accounting(rows, report)
    assert report.bytes_read == len(data)


@cache
def _prefix() -> tuple[bytes, list[tuple[Any, ...]]]:
    """The first 40 records of node2's WAL and their rows (not a fixture: Hypothesis would print it)."""
    data = _wal_path(require_data(WAL_DIR), 2).read_bytes()
    prefix = data[: frame_offsets(data)[40]]
    rows, _ = parse(prefix)
    return prefix, rows


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(flips=st.lists(st.tuples(st.integers(min_value=0), st.integers(min_value=0, max_value=7)), max_size=3))
def test_bit_flips_lose_only_the_flipped_records(flips: list[tuple[int, int]]) -> None:
    data, rows = _prefix()
    damaged = bytearray(data)
    for at, bit in flips:
        damaged[at % len(data)] ^= 1 << bit
    got, report = parse(bytes(damaged))
    _check_accounting(got, report)
    # Surviving rows are original rows, in order, and each flip costs one record at most.
    assert _is_subsequence([_no_seq(r) for r in got], [_no_seq(r) for r in rows])
    assert len(got) >= len(rows) - len(flips)
    # While length fields are intact, damage does not move the ordinals of later records.
    if all(at % len(data) - off not in range(4, 8) for at, _ in flips for off in frame_offsets(data)):
        by_seq = {r[_SEQ]: r for r in rows}
        assert all(by_seq[r[_SEQ]] == r for r in got)


def _no_seq(row: tuple[Any, ...]) -> tuple[Any, ...]:
    return (*row[:_SEQ], *row[_SEQ + 1 :])


def _is_subsequence(part: list[Any], whole: list[Any]) -> bool:
    it = iter(whole)
    return all(any(x == y for y in it) for x in part)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    edits=st.lists(
        st.tuples(st.sampled_from(["insert", "delete", "truncate"]), st.integers(min_value=0), st.binary(max_size=12)),
        min_size=1,
        max_size=3,
    )
)
def test_edits_never_raise_and_keep_intact_records(edits: list[tuple[str, int, bytes]]) -> None:
    data, rows = _prefix()
    damaged = bytearray(data)
    for op, at, blob in edits:
        at %= len(damaged) + 1
        if op == "insert":
            damaged[at:at] = blob or b"\x00"
        elif op == "delete":
            del damaged[at : at + 1 + len(blob)]
        else:
            del damaged[at:]
    started = time.perf_counter()
    got, report = parse(bytes(damaged))
    assert time.perf_counter() - started < 2
    _check_accounting(got, report)
    # Surviving rows are original records, in order (only their seq may move).
    assert _is_subsequence([_no_seq(r) for r in got], [_no_seq(r) for r in rows])
    if all(op != "truncate" for op, _, _ in edits):
        assert len(got) >= len(rows) - 2 * len(edits)


def test_concatenated_copies_parse_like_one(node0: tuple[bytes, list[Any], list[int]]) -> None:
    data, rows, _ = node0
    got, report = parse(data * 3)
    assert len(got) == 3 * len(rows) and not report.skipped
    assert [r[_SEQ] for r in got] == list(range(3 * len(rows)))
