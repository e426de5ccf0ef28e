"""The events a WAL implies but has no record of (parse/wal.py, parse/partsets.py): ``block_complete`` at the
record where a round's proposal block is whole, and ``timeout_scheduled`` at a fired timeout's time minus its
duration. On hand-built WALs (parts before the proposal, duplicates, round changes, overdue timeouts) and on the real
v0.34 testnet, checked there against an independent decoding (the protobuf runtime) and against the nodes' text logs
and their own round-state records."""

from __future__ import annotations

import io
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from bftscope.config import Settings
from bftscope.families.cometbft.parse.partsets import PartSets, proposal_total
from bftscope.families.cometbft.parse.wal import FROM_FIRE_TIME, FROM_PARTS, WalFormat
from bftscope.families.cometbft.synthetic import encode
from bftscope.ingest.parsereport import ParseReport
from bftscope.ingest.pipeline import ingest
from bftscope.model import ROW_COLUMNS
from bftscope.store import DuckDBStore
from tests.families.cometbft.parse.test_proto import TM, split_frames
from tests.families.cometbft.parse.test_wal import _ts, frame

COL = {name: i for i, name in enumerate(ROW_COLUMNS)}
T0 = 1_681_380_541_000_000_000
PEER_A, PEER_B = "a" * 40, "b" * 40
HASH_X, HASH_Y, HASH_Z = bytes([0xAA]) * 32, bytes([0xBB]) * 32, bytes([0xCC]) * 32


def _timed(ts: int, member: bytes) -> bytes:
    """TimedWALMessage{time, msg: WALMessage{member}}."""
    return encode.field_bytes(1, encode.timestamp(ts), always=True) + encode.field_bytes(2, member, always=True)


def _info(ts: int, msg: bytes, peer: str = "") -> bytes:
    """A MsgInfo record (a peer's message, or the node's own when ``peer`` is empty)."""
    body = encode.field_bytes(1, msg, always=True) + encode.field_bytes(2, peer.encode())
    return _timed(ts, encode.field_bytes(2, body, always=True))


def _proposal(ts: int, height: int, rnd: int, block: bytes, total: int, peer: str = "") -> bytes:
    body = encode.proposal(height, rnd, -1, block, total, b"\x01" * 32, ts - 5_000_000, b"sig")
    return _info(ts, encode.msg_proposal(body), peer)


def _part(ts: int, height: int, rnd: int, index: int, peer: str = "", total: int = 3) -> bytes:
    return _info(ts, encode.msg_block_part(height, rnd, index, b"data", total, index, b"leaf", []), peer)


def _timeout(ts: int, duration_ns: int, height: int, rnd: int, step: int) -> bytes:
    seconds, nanos = divmod(abs(duration_ns), 1_000_000_000)
    sign = -1 if duration_ns < 0 else 1  # a google.protobuf.Duration has seconds and nanos of one sign
    duration = encode.field_varint(1, sign * seconds) + encode.field_varint(2, sign * nanos)
    body = (encode.field_bytes(1, duration, always=True) + encode.field_varint(2, height)
            + encode.field_varint(3, rnd) + encode.field_varint(4, step))  # fmt: skip
    return _timed(ts, encode.field_bytes(3, body, always=True))


def _end_height(ts: int, height: int) -> bytes:
    return _timed(ts, encode.field_bytes(4, encode.field_varint(1, height), always=True))


def _parse(payloads: list[bytes]) -> tuple[list[dict[str, Any]], ParseReport]:
    report = ParseReport()
    data = b"".join(frame(p) for p in payloads)
    tables = list(WalFormat().parse(io.BytesIO(data), report))
    rows = [r for t in tables for r in t.to_pylist()]
    assert report.lines == len(payloads) and not report.skipped
    return rows, report


def _ms(n: float) -> int:
    return T0 + int(n * 1_000_000)


def test_block_complete_from_hand_built_parts() -> None:
    records = [
        # height 5, round 0: a part before the proposal, a duplicate, then the proposal, then the rest.
        _part(_ms(1), 5, 0, 1, PEER_A),
        _part(_ms(2), 5, 0, 1, PEER_B),  # duplicate: the node still holds one of three
        _proposal(_ms(3), 5, 0, HASH_X, 3, PEER_A),
        _part(_ms(4), 5, 0, 0, PEER_B),
        _part(_ms(5), 5, 0, 0, PEER_A),  # duplicate
        _part(_ms(6), 5, 0, 2, PEER_B),  # the third distinct index: complete here (seq 5)
        _part(_ms(7), 5, 0, 2, PEER_A),  # a late duplicate completes nothing again
        _proposal(_ms(8), 5, 0, HASH_X, 3, PEER_B),  # nor does the proposal from another peer
        # round 1: every part before the proposal, so the block is whole at the proposal record (seq 10).
        _part(_ms(9), 5, 1, 0, PEER_A, total=2),
        _part(_ms(10), 5, 1, 1, PEER_B, total=2),
        _proposal(_ms(11), 5, 1, HASH_Y, 2, PEER_A),
        # round 2: parts of another round (and an index beyond the total) never count for it.
        _part(_ms(12), 5, 2, 5, PEER_A),
        _part(_ms(13), 5, 1, 0, PEER_B, total=2),
        _proposal(_ms(14), 5, 2, HASH_Z, 2, PEER_B),
        _part(_ms(15), 5, 2, 0, PEER_A, total=2),  # one of two: never complete
        _end_height(_ms(16), 5),
        # stale: a whole block of the height that ended completes nothing (the consensus state ignores it).
        _proposal(_ms(16.5), 5, 3, HASH_Z, 1, PEER_A),
        _part(_ms(16.6), 5, 3, 0, PEER_A, total=1),
        # height 6: the node proposes; its own parts complete its own block (seq 19).
        _proposal(_ms(17), 6, 0, HASH_X, 1),
        _part(_ms(18), 6, 0, 0, total=1),
        _part(_ms(19), 6, 0, 0, PEER_A, total=1),
    ]
    rows, _ = _parse(records)
    done = [r for r in rows if r["kind"] == "block_complete"]
    got = [(r["ts"], r["seq"], r["height"], r["round"], r["block_hash"], json.loads(r["extra"])) for r in done]
    src = {"derived_from": FROM_PARTS}
    assert got == [
        (_ms(6), 5, 5, 0, HASH_X.hex().upper(), src),
        (_ms(11), 10, 5, 1, HASH_Y.hex().upper(), src),
        (_ms(18), 19, 6, 0, HASH_X.hex().upper(), src),
    ]
    # Every record is still there, once, with the derived event right after the record it comes from.
    assert [r["seq"] for r in rows if r["kind"] != "block_complete"] == list(range(len(records)))
    after = [rows[i + 1]["kind"] for i, r in enumerate(rows)
             if r["seq"] in (5, 10, 19) and r["kind"] != "block_complete"]  # fmt: skip
    assert after == ["block_complete"] * 3


def test_part_sets_forget_ended_heights() -> None:
    sets = PartSets()
    total2, total1 = '{"pol_round":-1,"parts_total":2}', '{"parts_total":1}'
    assert sets.part(1, 0, 0) is None and sets.proposal(1, 0, total2, "H") is None and sets.part(1, 0, 1) == "H"
    assert sets.part(2, 0, 0) is None
    sets.end_height(1)  # height 1 is forgotten, height 2 (parts that came early) is kept
    assert sets.proposal(2, 0, total1, None) == ""
    sets.end_height(2)  # stale from now on: heights 1 and 2
    assert sets.proposal(2, 1, total1, "H") is None and sets.part(2, 1, 0) is None
    # Heights that start over (two WALs concatenated: EndHeight{0} begins a WAL) complete again.
    sets.end_height(0)
    assert sets.proposal(1, 0, total1, "H") is None and sets.part(1, 0, 0) == "H"
    assert proposal_total(total2) == 2
    assert proposal_total(None) == proposal_total("not json") == proposal_total('{"parts_total":"4"}') == 0


def test_timeout_scheduled_is_fire_time_minus_duration() -> None:
    records = [
        _timeout(_ms(1000), 1_000_000_000, 7, 0, 1),  # fired on time after 1 s: scheduled at 0 ms
        _timeout(_ms(1200), 0, 7, 0, 3),  # a zero wait: scheduled when it fired
        _timeout(_ms(60_000), -65_000_000, 8, 0, 1),  # overdue (after a restart): no schedule time
    ]
    rows, report = _parse(records)
    sched = [(r["ts"], r["seq"], r["height"], r["round"], r["step"], json.loads(r["extra"]))
             for r in rows if r["kind"] == "timeout_scheduled"]  # fmt: skip
    assert sched == [
        (_ms(0), 0, 7, 0, "new_height", {"duration_ns": 1_000_000_000, "derived_from": FROM_FIRE_TIME}),
        (_ms(1200), 1, 7, 0, "propose", {"duration_ns": 0, "derived_from": FROM_FIRE_TIME}),
    ]
    assert [r["seq"] for r in rows if r["kind"] == "timeout_fired"] == [0, 1, 2]
    assert report.warnings == [next(w for w in report.warnings if w.startswith("1 overdue timeout"))]


# --------------------------------------------------------------------------------------------
# The real 4-node v0.34 testnet: WALs and text logs ingested together.
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> tuple[DuckDBStore, int, Path]:
    from tests.conftest import require_data

    folder = require_data("cometbft/tendermint-v0.34-4node-wal")
    settings = Settings(data_dir=tmp_path_factory.mktemp("walderived"))
    store = DuckDBStore.open(settings.store_path, settings)
    ingest(store, "wal", [folder], settings)
    return store, store.get_run("wal").id, folder


def _independent_completions(wal: bytes) -> dict[tuple[int, int], tuple[int, str]]:
    """(height, round) → (ts, block hash) where the node first held all parts, by the protobuf runtime."""
    timed = TM["tendermint.consensus.TimedWALMessage"]
    held: dict[tuple[int, int], set[int]] = defaultdict(set)
    totals: dict[tuple[int, int], tuple[int, str]] = {}
    out: dict[tuple[int, int], tuple[int, str]] = {}
    for payload in split_frames(wal):
        rec = timed.FromString(payload)
        if rec.msg.WhichOneof("sum") != "msg_info":
            continue
        msg = rec.msg.msg_info.msg
        if msg.WhichOneof("sum") == "proposal":
            p = msg.proposal.proposal
            totals.setdefault((p.height, p.round), (p.block_id.part_set_header.total, p.block_id.hash.hex().upper()))
        elif msg.WhichOneof("sum") == "block_part":
            held[(msg.block_part.height, msg.block_part.round)].add(msg.block_part.part.index)
        else:
            continue
        for key, (total, block) in totals.items():
            if key not in out and {i for i in held[key] if i < total} == set(range(total)):
                out[key] = (_ts(rec.time), block)
    return out


def test_real_wal_block_complete_per_height(real: tuple[DuckDBStore, int, Path]) -> None:
    store, rid, folder = real
    names = dict(store.query("SELECT n.node, n.label FROM nodes n WHERE n.run_id = ?", [rid]))
    for node, label in names.items():
        got = store.query(
            "SELECT height, round, ts, block_hash, extra FROM events WHERE run_id = ? AND node = ?"
            " AND kind = 'block_complete' ORDER BY height",
            [rid, node],
        )
        wal = (folder / label / "data" / "cs.wal" / "wal").read_bytes()
        want = _independent_completions(wal)
        assert {(h, r): (ts, b) for h, r, ts, b, _ in got} == want
        # One per committed height, all in round 0 (the run never needed a second round).
        assert [(h, r) for h, r, *_ in got] == [(h, 0) for h in range(1, 78)]
        assert {json.loads(x)["derived_from"] for *_, x in got} == {FROM_PARTS}
        # The text log (heights 50..77, after the restart) executes each block after it was complete.
        executed = dict(store.query("SELECT height, ts FROM events WHERE run_id = ? AND node = ?"
                                    " AND kind = 'block_executed'", [rid, node]))  # fmt: skip
        assert sorted(executed) == list(range(50, 78))
        for h, _, ts, *_ in got:
            if h in executed:
                assert 0 < executed[h] - ts < 1_000_000_000


def test_real_wal_timeouts_scheduled(real: tuple[DuckDBStore, int, Path]) -> None:
    store, rid, _ = real
    for (node,) in store.query("SELECT node FROM nodes WHERE run_id = ?", [rid]):
        fired = store.query("SELECT height, ts, extra FROM events WHERE run_id = ? AND node = ?"
                            " AND kind = 'timeout_fired' ORDER BY ts", [rid, node])  # fmt: skip
        sched = store.query("SELECT height, ts, extra FROM events WHERE run_id = ? AND node = ?"
                            " AND kind = 'timeout_scheduled' ORDER BY ts", [rid, node])  # fmt: skip
        on_time = [(h, ts - json.loads(x)["duration_ns"]) for h, ts, x in fired if "overdue_ns" not in x]
        assert [(h, ts) for h, ts, _ in sched] == on_time
        assert len(on_time) == len(fired) - 2  # the WAL's first timeout and the one after the restart were overdue
        # Every timeout the run fired is timeout_commit, scheduled on entering the new height: the derived time
        # lies just after the WAL's own new_height record, and after the text log's "Committed state" before it.
        entered = dict(store.query("SELECT height, ts FROM events WHERE run_id = ? AND node = ? AND kind = 'step'"
                                   " AND step = 'new_height'", [rid, node]))  # fmt: skip
        committed = dict(store.query("SELECT height + 1, ts FROM events WHERE run_id = ? AND node = ?"
                                     " AND kind = 'state_committed'", [rid, node]))  # fmt: skip
        for h, ts in on_time:
            assert 0 <= ts - entered[h] < 20_000_000
            if h in committed:
                assert 0 <= ts - committed[h] < 20_000_000
    restarts = store.query("SELECT node, height FROM events WHERE run_id = ? AND kind = 'node_restart'", [rid])
    assert sorted(restarts) == [(n, 50) for n in range(4)]
