"""Node restarts: found in the real v0.34 network (every node was restarted during height 50), recorded as
``node_restart`` events, and kept out of every duration."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bftscope.config import Settings
from bftscope.families.cometbft.analytics import timeline
from bftscope.ingest.pipeline import ingest
from bftscope.store import DuckDBStore
from tests.conftest import require_data

WAL_NET = "cometbft/tendermint-v0.34-4node-wal"


def _ingest(root: Path, name: str, inputs: list[Path]) -> tuple[DuckDBStore, int]:
    settings = Settings(data_dir=root / "store")
    store = DuckDBStore.open(settings.store_path, settings)
    ingest(store, name, inputs, settings)
    return store, store.get_run(name).id


@pytest.fixture(scope="module")
def v034(tmp_path_factory: pytest.TempPathFactory) -> tuple[DuckDBStore, int]:
    return _ingest(tmp_path_factory.mktemp("v034"), "v034", [require_data(WAL_NET)])


def _restarts(store: DuckDBStore, rid: int) -> list[tuple[int, int, dict[str, object]]]:
    return [
        (r[0], r[1], json.loads(r[2]))
        for r in store.query(
            "SELECT node, ts, extra FROM events WHERE run_id = ? AND kind = 'node_restart' ORDER BY node, ts", [rid]
        )
    ]


def test_every_node_restart_is_found_once(v034: tuple[DuckDBStore, int]) -> None:
    store, rid = v034
    found = _restarts(store, rid)
    assert [n for n, _, _ in found] == [0, 1, 2, 3]
    for node, ts, extra in found:
        # The node's log begins again with its version line; its WAL falls silent for ~50 s before it.
        (version_ts,) = store.query(
            "SELECT min(ts) FROM events WHERE run_id = ? AND node = ? AND kind = 'node_info'", [rid, node]
        )[0]
        assert ts == version_ts
        down_from = extra["down_from_ns"]
        assert isinstance(down_from, int)
        (last_before,) = store.query(
            "SELECT max(ts) FROM events WHERE run_id = ? AND node = ? AND ts < ? AND kind <> 'node_restart'",
            [rid, node, ts],
        )[0]
        assert down_from == last_before
        assert 45_000 < (ts - down_from) / 1e6 < 55_000
        evidence = extra["evidence"]
        assert isinstance(evidence, list)
        assert any("Version info" in str(e) for e in evidence) and any("WAL" in str(e) for e in evidence)


def test_no_negative_durations_on_real_data(v034: tuple[DuckDBStore, int]) -> None:
    store, rid = v034
    durations = [
        json.loads(x)["duration_ns"]
        for (x,) in store.query(
            "SELECT extra FROM events WHERE run_id = ? AND kind = 'timeout_fired' AND extra IS NOT NULL", [rid]
        )
    ]
    assert durations and min(durations) >= 0
    # The restarted nodes' first timeouts were scheduled for a moment already past: kept as "overdue".
    (overdue,) = store.query(
        "SELECT count(*) FROM events WHERE run_id = ? AND kind = 'timeout_fired' AND extra LIKE '%overdue_ns%'", [rid]
    )[0]
    assert overdue >= 4
    steps = timeline.step_durations(store, rid)
    assert min(r["p50_ms"] for r in steps) >= 0 and min(r["max_ms"] for r in steps) >= 0
    # No step lasts across a restart: the longest step is a timeout's length, not the 50 s of downtime.
    assert max(r["max_ms"] for r in steps) < 5_000
    hs = timeline.heights(store, rid)
    assert all(h["duration_ms"] is None or h["duration_ms"] >= 0 for h in hs)
    for h in (49, 50, 51):
        for node in timeline.height_detail(store, rid, h):
            assert all(s["duration_ms"] is None or s["duration_ms"] >= 0 for s in node["steps"])


def test_height_50_excludes_the_downtime(v034: tuple[DuckDBStore, int]) -> None:
    store, rid = v034
    (first, last) = store.query(
        "SELECT (SELECT min(ts) FROM events WHERE run_id = $r AND kind = 'step' AND height = 50),"
        " (SELECT max(t) FROM (SELECT node, min(ts) AS t FROM events WHERE run_id = $r AND height = 50"
        "  AND kind IN ('block_committed', 'height_end') GROUP BY node))",
        {"r": rid},
    )[0]
    found = _restarts(store, rid)
    # The network was down while every node was: from the last node going silent to the first coming back.
    down = min(ts for _, ts, _ in found) - max(int(str(e["down_from_ns"])) for _, _, e in found)
    assert down > 45e9 and (last - first) > 50e9
    h50 = next(h for h in timeline.heights(store, rid) if h["height"] == 50)
    assert h50["duration_ms"] == pytest.approx((last - first - down) / 1e6)
    assert h50["downtime_ms"] == pytest.approx(down / 1e6)
    assert h50["restarts"] == ["node0", "node1", "node2", "node3"]
    assert h50["duration_ms"] < 5_000
    h49 = next(h for h in timeline.heights(store, rid) if h["height"] == 49)
    assert h49["downtime_ms"] == 0 and h49["restarts"] == []
    # The height's timeline shows each node's restart where it happened.
    detail = timeline.height_detail(store, rid, 50)
    assert [len(n["restarts"]) for n in detail] == [1, 1, 1, 1]
    assert all(45_000 < n["restarts"][0]["down_ms"] < 55_000 for n in detail)


def test_wal_alone_shows_the_restart(tmp_path: Path) -> None:
    net = require_data(WAL_NET)
    store, rid = _ingest(tmp_path, "wal", [net / f"node{i}" / "data" / "cs.wal" / "wal" for i in range(4)])
    found = _restarts(store, rid)
    assert len(found) == 4
    for _, ts, extra in found:
        assert 45_000 < (ts - int(str(extra["down_from_ns"]))) / 1e6 < 55_000
        assert all("WAL" in str(e) for e in extra["evidence"])  # type: ignore[union-attr]


def test_a_log_that_starts_again_is_a_restart(tmp_path: Path) -> None:
    log = tmp_path / "node.log"
    pad = " " * 33
    log.write_text(
        f"I[2023-04-13|10:10:00.000] Version info {pad}module=main software=v0.34.0 block=11 p2p=8\n"
        f"I[2023-04-13|10:10:01.000] Executed block {pad}module=state height=5 validTxs=0 invalidTxs=0\n"
        f"I[2023-04-13|10:10:02.000] Committed state {pad}module=state height=5 txs=0 appHash=\n"
        f"I[2023-04-13|10:10:30.000] Version info {pad}module=main software=v0.34.0 block=11 p2p=8\n"
        f"I[2023-04-13|10:10:31.000] Executed block {pad}module=state height=6 validTxs=0 invalidTxs=0\n",
        encoding="utf-8",
    )
    store, rid = _ingest(tmp_path, "log", [log])
    found = _restarts(store, rid)
    assert len(found) == 1  # the first start is where the record begins, not a restart
    _, ts, extra = found[0]
    assert (ts - int(str(extra["down_from_ns"]))) == 28_000_000_000
