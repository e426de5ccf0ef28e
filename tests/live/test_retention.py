"""Retention of live runs: rows of heights older than the raw window go with their derived rows, newer stay;
summaries stay for their longer window (dated by the marks of earlier cuts once the events are gone);
counts are reported; pruning twice is a no-op; appends during a prune are never lost; uploaded runs are
never pruned; the background pruner counts what it removed."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bftscope.config import Settings
from bftscope.families.cometbft.analytics import rollups
from bftscope.families.cometbft.missed.votes import missed
from bftscope.ingest import derived
from bftscope.ingest.livesink import StoreSink
from bftscope.live import retention
from bftscope.store.duckdb.engine import DuckDBStore

DAY_NS = 86_400 * 10**9
DAY = 86_400.0
HEIGHTS = 40  # height h happened on day h
SET_CHANGES = (1, 10, 20, 30)


def _settings(tmp_path: Path, **kw: Any) -> Settings:
    return Settings(data_dir=tmp_path / "data", retention_raw_days=7, retention_summary_days=30, **kw)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[DuckDBStore]:
    settings = _settings(tmp_path)
    s = DuckDBStore.open(settings.store_path, settings)
    yield s
    s.close()


def _height_rows(h: int, node: int) -> list[dict[str, Any]]:
    """A height's events at one observer: its step, the votes it received (for vote arrivals) and its commit."""
    t = h * DAY_NS
    rows: list[dict[str, Any]] = [{"ts": t, "kind": "step", "step": "propose", "height": h, "round": 0}]
    for v in range(3):
        if v != node:
            rows.append({"ts": t + 1000 + v, "kind": "msg_received", "msg_type": "vote", "height": h, "round": 0,
                         "vote_type": "prevote", "validator": f"V{v}", "validator_index": v,
                         "signer_ts": t + v})  # fmt: skip
    rows.append({"ts": t + 5000, "kind": "block_committed", "height": h, "round": 0})
    return rows


def _live_run(store: DuckDBStore, heights: range = range(1, HEIGHTS + 1)) -> int:
    sink = StoreSink(store, "net", "cometbft", update_every_s=None)
    for h in heights:
        for node in range(2):
            sink.write(f"node{node}", _height_rows(h, node))
    sink.write("node0", [{"ts": 2 * DAY_NS, "kind": "observation_gap", "extra": "{}"},   # without a height
                         {"ts": 39 * DAY_NS, "kind": "observation_gap", "extra": "{}"}])  # fmt: skip
    sink.flush()
    run_id = store.get_run("net").id
    for h in SET_CHANGES:
        store.execute("INSERT INTO validator_sets (run_id, height, validator, voting_power, proposer_priority, idx,"
                      " source) VALUES (?, ?, ?, 10, 0, 0, 'rpc')", [run_id, h, "AB" * 20])  # fmt: skip
    for h in range(1, HEIGHTS + 1):
        store.execute("INSERT INTO validator_priorities (run_id, height, priorities, source)"
                      " VALUES (?, ?, '[0]', 'rpc')", [run_id, h])  # fmt: skip
    return run_id


def _count(store: DuckDBStore, table: str, where: str, run_id: int) -> int:
    return int(store.query(f"SELECT count(*) FROM {table} WHERE run_id = ? AND {where}", [run_id])[0][0])


def _answers(store: DuckDBStore, run_id: int) -> dict[str, Any]:
    rows = store.query("SELECT * FROM vote_arrivals WHERE run_id = ? ORDER BY ALL", [run_id])
    return {"vote_arrivals": rows, **{n: rollups.answer_json(store, run_id, n) for n in rollups.METRICS}}


def test_rows_older_than_the_windows_go_newer_stay_and_counts_are_reported(store: DuckDBStore,
                                                                          tmp_path: Path) -> None:  # fmt: skip
    run_id = _live_run(store)
    now = 40.5 * DAY  # raw window from day 33.5: heights 34.. stay; summary window from day 10.5: heights 11..
    expected = {
        "events": _count(store, "events", "(height < 34 OR (height IS NULL AND ts < 33.5 * 86400e9))", run_id),
        "vote_arrivals": _count(store, "vote_arrivals", "height < 34", run_id),
        "validator_sets": _count(store, "validator_sets", "height < 10", run_id),  # the set of 10 holds at 11
        "validator_priorities": _count(store, "validator_priorities", "height < 11", run_id),
        # kept of heights 1..33 before their events went (test_kept.py), the summary window takes 1..10
        "missed_votes": len(missed(store, run_id, to_height=10)),
        "height_summaries": 10,
    }
    kept_events = _count(store, "events", "true", run_id) - expected["events"]
    assert all(expected.values())
    result = retention.prune(store, run_id, now, _settings(tmp_path, retention_batch_heights=5))
    assert result.removed == expected
    assert (result.raw_cut_height, result.summary_cut_height) == (34, 11)
    assert _count(store, "events", "true", run_id) == kept_events
    assert _count(store, "events", "height < 34", run_id) == 0 and _count(store, "events", "height >= 34", run_id)
    assert _count(store, "events", "height IS NULL", run_id) == 1  # the gap of day 39 stays, day 2's went
    heights = [h for (h,) in store.query("SELECT height FROM validator_sets WHERE run_id = ? ORDER BY 1", [run_id])]
    assert heights == [10, 20, 30]
    # what is derived from the events kept is what a rebuild of them gives, answers included
    kept = _answers(store, run_id)
    derived.build(store, run_id)
    assert _answers(store, run_id) == kept
    # twice: nothing left to remove
    again = retention.prune(store, run_id, now, _settings(tmp_path))
    assert again.removed == {} and again.total == 0


def test_summaries_outlive_the_events_dated_by_earlier_cuts(store: DuckDBStore, tmp_path: Path) -> None:
    run_id = _live_run(store)
    settings = _settings(tmp_path)
    missed_11_33 = len(missed(store, run_id, from_height=11, to_height=33))
    retention.prune(store, run_id, 40.5 * DAY, settings)  # marks: heights < 34 were older than day 33.5
    gone = retention.prune(store, run_id, 50 * DAY, settings)  # every event is older than day 43: all go
    assert _count(store, "events", "true", run_id) == 0 and gone.removed["events"] > 0
    # the summary window starts at day 20, but the only date known for heights 11..33 is "before day 33.5": kept
    assert gone.summary_cut_height is None and "validator_priorities" not in gone.removed
    late = retention.prune(store, run_id, 64 * DAY, settings)  # window from day 34: the first mark dates < 34
    assert late.summary_cut_height == 34
    assert late.removed == {"validator_priorities": 34 - 11, "validator_sets": 2,  # the set of 30 holds at 34
                            "missed_votes": missed_11_33, "height_summaries": 34 - 11}  # fmt: skip
    assert [h for (h,) in store.query("SELECT height FROM validator_sets WHERE run_id = ?", [run_id])] == [30]
    assert store.query("SELECT height FROM retention_marks WHERE run_id = ? ORDER BY 1", [run_id]) == [(34,), (41,)]


def test_uploaded_runs_are_never_pruned(store: DuckDBStore, tmp_path: Path) -> None:
    run = store.get_or_create_run("uploaded", "cometbft")
    node = store.resolve_node(run.id, p2p_id=None, validator=None, moniker=None, label="n0")
    src = store.begin_source(run.id, node.node, "node.log", "cometbft-json", "hash", 10)
    from bftscope.ingest.livesink import _table

    store.append_events(run.id, node.node, src.id, _table(_height_rows(1, 0)))
    result = retention.prune(store, run.id, 1000 * DAY, _settings(tmp_path))
    assert result.skipped and result.removed == {}
    assert _count(store, "events", "true", run.id) == len(_height_rows(1, 0))
    assert retention.live_runs(store) == []


def test_appends_during_a_prune_are_never_lost(store: DuckDBStore, tmp_path: Path) -> None:
    run_id = _live_run(store)
    sink = StoreSink(store, "net", "cometbft", update_every_s=None)
    added = threading.Event()
    written: list[int] = []

    def append() -> None:
        for h in range(HEIGHTS + 1, HEIGHTS + 41):
            sink.write("node2", _height_rows(h, 0))  # (a second sink's source: a name of its own)
            written.append(h)
        added.set()

    writer = threading.Thread(target=append)
    writer.start()
    result = retention.prune(store, run_id, 40.5 * DAY, _settings(tmp_path, retention_batch_heights=1))
    writer.join()
    assert added.is_set() and result.removed["events"] > 0
    for h in written:
        assert _count(store, "events", f"height = {h}", run_id) == len(_height_rows(h, 0))


def test_store_size_counts_the_runs_rows(store: DuckDBStore) -> None:
    run_id = _live_run(store)
    size = retention.store_size(store, run_id, file_bytes=1_000_000)
    assert size.rows["events"] == _count(store, "events", "true", run_id)
    assert size.rows["validator_sets"] == len(SET_CHANGES)
    assert size.bytes_estimate == 1_000_000  # the only run: all of it
    other = _live_run_named(store, "other")
    half = retention.store_size(store, run_id, file_bytes=1_000_000)
    assert half.bytes_estimate is not None and 0 < half.bytes_estimate < 1_000_000
    assert retention.live_runs(store) == sorted([run_id, other])


def _live_run_named(store: DuckDBStore, name: str) -> int:
    sink = StoreSink(store, name, "cometbft", update_every_s=None)
    sink.write("node0", _height_rows(1, 0))
    sink.flush()
    return store.get_run(name).id


def test_background_pruner_passes_and_counts(store: DuckDBStore, tmp_path: Path) -> None:
    run_id = _live_run(store)
    now = [40.5 * DAY]
    pruner = retention.Pruner(store, _settings(tmp_path, retention_interval_s=3600), clock=lambda: now[0])
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds
        if len(slept) == 2:
            pruner.stop()

    pruner._sleep = sleep
    asyncio.run(asyncio.wait_for(pruner.run(), 10))
    assert pruner.passes == 1 and slept == [3600, 3600] and pruner.errors == 0  # sleep, prune, sleep: stopped
    assert pruner.removed[(run_id, "events")] > 0 and pruner.removed[(run_id, "vote_arrivals")] > 0


def test_metrics_show_live_run_size_and_what_retention_removed(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from bftscope.api.app import create_app

    settings = _settings(tmp_path, rate_limit_enabled=False)
    with TestClient(create_app(settings)) as client:
        store: DuckDBStore = client.app.state.ctx.store  # type: ignore[attr-defined]
        run_id = _live_run(store)
        pruner = client.app.state.ctx.pruner  # type: ignore[attr-defined]
        pruner._clock = lambda: 40.5 * DAY
        pruner.prune_once()
        events = _count(store, "events", "true", run_id)
        text = client.get("/metrics").text
    assert f'bftscope_live_store_rows{{run="net",table="events"}} {float(events)}' in text
    removed = pruner.removed[(run_id, "events")]
    assert f'bftscope_retention_removed_rows{{run="net",table="events"}} {float(removed)}' in text
    assert "bftscope_retention_passes 1.0" in text and 'bftscope_live_store_bytes{run="net"}' in text


def test_deleting_a_run_removes_its_retention_marks(store: DuckDBStore, tmp_path: Path) -> None:
    run_id = _live_run(store)
    retention.prune(store, run_id, 40.5 * DAY, _settings(tmp_path))
    assert store.query("SELECT count(*) FROM retention_marks WHERE run_id = ?", [run_id])[0][0] == 1
    store.delete_run(run_id)
    assert store.query("SELECT count(*) FROM retention_marks")[0][0] == 0
