"""Incremental analytics of a live run: the real v0.34 testnet's events, written through a live run's sink in
chunks of arrival time (late votes of older heights included), give after each update the same derived rows
and the same answer of every rollup as a full rebuild of the same events; the derived version is set only
when the update covered every event written."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from bftscope.config import Settings
from bftscope.families import registry
from bftscope.families.cometbft.analytics import rollups
from bftscope.ingest import derived
from bftscope.ingest.livesink import StoreSink
from bftscope.ingest.pipeline import ingest
from bftscope.model import ROW_SCHEMA
from bftscope.store.duckdb.engine import DuckDBStore

DERIVED = {
    "vote_arrivals": "receiver, height, round, vote_type, validator_index",
    "deliveries": "sender, receiver, msg_type, height, round, vote_type, validator_index, part_index, sent_ts, "
    "send_event",
    "unmatched_receipts": "sender, receiver, msg_type, height",
}


@pytest.fixture
def store(settings: Settings) -> Iterator[DuckDBStore]:
    s = DuckDBStore.open(settings.store_path, settings)
    yield s
    s.close()


def _snapshot(store: DuckDBStore, run_id: int) -> dict[str, Any]:
    """Every derived row (in a fixed order), the whole-run answer of every rollup (stored, or computed when
    none is stored), and the node restarts."""
    out: dict[str, Any] = {}
    for table, order in DERIVED.items():
        out[table] = store.query(f"SELECT * FROM {table} WHERE run_id = ? ORDER BY {order}, 1", [run_id])
    out["answers"] = {name: rollups.answer_json(store, run_id, name) for name in rollups.METRICS}
    out["restarts"] = store.query("SELECT node, ts, height, extra FROM events WHERE run_id = ? AND kind = "
                                  "'node_restart' ORDER BY node, ts", [run_id])  # fmt: skip
    return out


def _recorded_events(store: DuckDBStore, wal_testnet: Path, settings: Settings) -> tuple[pa.Table, dict[int, str]]:
    """The testnet's parsed events in order of arrival (ts), with the label of each node."""
    run = ingest(store, "recorded", [wal_testnet], settings).run_id
    labels = {n.node: n.label for n in store.nodes(run)}
    cols = ", ".join(f.name for f in ROW_SCHEMA)
    table = store.query_arrow(f"SELECT node, {cols} FROM events WHERE run_id = ? AND kind <> 'node_restart'"
                              " ORDER BY ts, id", [run])  # fmt: skip
    return table, labels


def _chunks(table: pa.Table, n: int) -> Iterator[pa.Table]:
    step = -(-table.num_rows // n)
    for start in range(0, table.num_rows, step):
        yield table.slice(start, step)


def test_chunked_live_updates_equal_a_full_rebuild(
    store: DuckDBStore, wal_testnet: Path, settings: Settings
) -> None:
    events, labels = _recorded_events(store, wal_testnet, settings)
    sink = StoreSink(store, "live", "cometbft", update_every_s=None)
    spans = []
    for i, chunk in enumerate(_chunks(events, 16)):
        for node, label in labels.items():
            part = chunk.filter(pc.equal(chunk.column("node"), node)).drop_columns(["node"])
            if part.num_rows:
                sink.write(label, [part])
        spans.append((pc.min(chunk.column("height")).as_py(), pc.max(chunk.column("height")).as_py()))
        assert sink.update(rollups=i % 2 == 0)  # between refreshes the stored answers are dropped
        run_id = store.get_run("live").id
        stored = store.query("SELECT count(*) FROM rollups WHERE run_id = ?", [run_id])[0][0]
        assert stored == (len(rollups.METRICS) if i % 2 == 0 else 0)
        assert derived.is_current(store, run_id)
        if i == 5:  # midway, the incremental answers already equal a rebuild of what has arrived
            incremental = _snapshot(store, run_id)
            derived.build(store, run_id)
            assert _snapshot(store, run_id) == incremental
    sink.flush()  # nothing new, but the dropped rollups are stored again
    # Arrival order brings rows of heights an earlier update already derived (late receipts, a restarted node)
    assert sum(lo < prev[1] for prev, (lo, _) in itertools.pairwise(spans)) >= 6
    assert sink.updates == 17 and sink.full_updates == 1  # the first (a new run) full, the rest incremental
    run_id = store.get_run("live").id
    incremental = _snapshot(store, run_id)
    assert all(incremental[t] for t in ("vote_arrivals", "deliveries"))  # non-trivial: the tables were built
    assert store.query("SELECT count(*) FROM rollups WHERE run_id = ?", [run_id])[0][0] == len(rollups.METRICS)
    derived.build(store, run_id)
    assert _snapshot(store, run_id) == incremental


def test_incremental_replaces_only_the_heights_given(store: DuckDBStore, wal_testnet: Path,
                                                    settings: Settings) -> None:  # fmt: skip
    """Rows below the height given are left alone (the proof that the update is not a rebuild in disguise)."""
    run = ingest(store, "r", [wal_testnet], settings).run_id
    store.execute("UPDATE vote_arrivals SET receipts = 99 WHERE run_id = ? AND height < 40", [run])
    registry.family("cometbft").derive_incremental(store, run, 40)
    assert store.query("SELECT count(*) FROM vote_arrivals WHERE run_id = ? AND height >= 40 AND receipts = 99",
                       [run])[0][0] == 0  # fmt: skip
    kept = store.query("SELECT count(*) FROM vote_arrivals WHERE run_id = ? AND height < 40 AND receipts = 99",
                       [run])[0][0]  # fmt: skip
    assert kept == store.query("SELECT count(*) FROM vote_arrivals WHERE run_id = ? AND height < 40", [run])[0][0] > 0


def test_derived_version_stays_clear_while_events_outrun_the_update(store: DuckDBStore) -> None:
    rows = [{"ts": 1_000 + h, "kind": "step", "step": "propose", "height": h, "round": 0} for h in range(1, 4)]
    sink = StoreSink(store, "live", "cometbft", update_every_s=None)
    sink.write("n0", rows[:1])
    run_id = store.get_run("live").id
    assert store.derived_version(run_id) is None
    real = derived.refresh

    def refresh_with_an_event_meanwhile(s: Any, r: int, h: int | None, **kw: Any) -> dict[str, int]:
        sink.write("n0", rows[1:2])  # an event lands while the update runs
        return real(s, r, h, **kw)

    derived.refresh = refresh_with_an_event_meanwhile  # type: ignore[assignment]
    try:
        assert sink.update()
    finally:
        derived.refresh = real  # type: ignore[assignment]
    assert store.derived_version(run_id) is None  # the event written meanwhile is not covered
    assert sink.update() and derived.is_current(store, run_id)
    assert not sink.update()  # nothing new


def test_write_updates_when_a_new_height_begins_at_most_every_interval(store: DuckDBStore) -> None:
    now = [0.0]
    sink = StoreSink(store, "live", "cometbft", update_every_s=10.0, clock=lambda: now[0])
    row = {"ts": 1, "kind": "step", "step": "propose", "round": 0}

    def write(height: int) -> int:
        sink.write("n0", [row | {"height": height}])
        sink.wait()  # write started the update in a thread of its own
        return sink.updates

    assert write(1) == 0  # no height completed yet
    assert write(2) == 1  # height 1 is complete
    assert write(3) == 1  # too soon
    now[0] = 11.0
    assert write(3) == 1  # same height: nothing completed
    assert write(4) == 2 and derived.is_current(store, store.get_run("live").id)
    sink.write("n0", [row | {"height": 4}])
    assert not derived.is_current(store, store.get_run("live").id)  # a row the last update did not cover
    sink.flush()
    assert derived.is_current(store, store.get_run("live").id)


def test_a_failed_update_from_write_is_counted_and_the_next_one_rebuilds(
    store: DuckDBStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bftscope.errors import StoreError

    sink = StoreSink(store, "live", "cometbft", update_every_s=0.0)
    row = {"ts": 1, "kind": "step", "step": "propose", "round": 0}
    sink.write("n0", [row | {"height": 1}])
    real = derived.refresh
    calls: list[int | None] = []

    def failing(s: Any, r: int, h: int | None, **kw: Any) -> dict[str, int]:
        calls.append(h)
        raise StoreError("disk full")

    monkeypatch.setattr(derived, "refresh", failing)
    sink.write("n0", [row | {"height": 2}])  # the row is stored, the update's failure counted (in its thread)
    sink.wait()
    assert sink.update_errors == 1 and store.query("SELECT count(*) FROM events")[0][0] == 2
    monkeypatch.setattr(derived, "refresh", lambda s, r, h, **kw: calls.append(h) or real(s, r, h, **kw))
    sink.flush()
    assert calls[-1] is None and derived.is_current(store, store.get_run("live").id)  # a full rebuild


def test_keep_current_updates_in_a_thread_until_cancelled(store: DuckDBStore) -> None:
    import asyncio

    sink = StoreSink(store, "live", "cometbft", update_every_s=None)
    row = {"ts": 1, "kind": "step", "step": "propose", "round": 0}
    naps: list[float] = []

    async def main() -> None:
        async def nap(seconds: float) -> None:
            naps.append(seconds)
            if len(naps) == 3:
                raise asyncio.CancelledError
            await asyncio.sleep(0)

        sink.write("n0", [row | {"height": 1}])
        with pytest.raises(asyncio.CancelledError):
            await sink.keep_current(2.0, sleep=nap)

    asyncio.run(main())
    assert naps == [2.0, 2.0, 2.0] and sink.updates == 1  # the second pass found nothing new
    assert derived.is_current(store, store.get_run("live").id)


def test_rollups_wait_ten_times_their_own_cost(store: DuckDBStore) -> None:
    now = [0.0]
    sink = StoreSink(store, "live", "cometbft", update_every_s=None, rollups_every_s=1.0, clock=lambda: now[0])
    row = {"ts": 1, "kind": "step", "step": "propose", "round": 0}
    real = derived.refresh
    seen: list[bool] = []

    def slow(s: Any, r: int, h: int | None, *, rollups: bool = True, derive: bool = True) -> dict[str, int]:
        seen.append(rollups)
        now[0] += 3.0 if rollups else 0.1  # a rollup refresh that takes 3 s
        return real(s, r, h, rollups=rollups, derive=derive)

    derived.refresh = slow  # type: ignore[assignment]
    try:
        for h in range(1, 5):
            sink.write("n0", [row | {"height": h}])
            sink.update()
            now[0] += 10.0
    finally:
        derived.refresh = real  # type: ignore[assignment]
    # refresh at t=0 took 3 s: the next waits 30 s, not rollups_every_s
    assert seen == [True, False, False, True]


def test_a_run_resumed_after_a_crash_keeps_its_events_and_goes_on(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "d")
    row = {"ts": 1, "kind": "step", "step": "propose", "round": 0}
    store = DuckDBStore.open(settings.store_path, settings)
    sink = StoreSink(store, "live", "cometbft", update_every_s=None)
    sink.write("n0", [row | {"height": 1}, row | {"height": 2}])
    store.close()  # the process dies: no flush, no update
    store = DuckDBStore.open(settings.store_path, settings)  # opening recovers interrupted ingests
    try:
        run_id = store.get_run("live").id
        assert store.query("SELECT count(*) FROM events WHERE run_id = ?", [run_id])[0][0] == 2
        again = StoreSink(store, "live", "cometbft", update_every_s=None)
        again.write("n0", [row | {"height": 3}])
        again.flush()
        assert again.full_updates == 1  # the run was not current when the process died: rebuilt in full
        (source,) = store.sources(run_id)
        assert (source.name, source.events) == ("live:n0", 3)
        assert derived.is_current(store, run_id)
    finally:
        store.close()


def test_two_live_runs_of_one_store_update_at_once_without_tripping(
    store: DuckDBStore, wal_testnet: Path, settings: Settings
) -> None:
    """Several followed networks share one store, each sink updating in its own thread. Derive steps use
    session-wide temporary tables of fixed names: run concurrently they failed ('Column with name "k" already
    exists'), seen in bench/live_follow_bench.py. Each run's tables must equal a rebuild of its own."""
    import threading

    events, labels = _recorded_events(store, wal_testnet, settings)
    sinks = [StoreSink(store, f"live{i}", "cometbft", update_every_s=None) for i in range(3)]
    for sink in sinks:
        for node, label in labels.items():
            sink.write(label, [events.filter(pc.equal(events.column("node"), node)).drop_columns(["node"])])
    errors: list[BaseException] = []

    def update(sink: StoreSink) -> None:
        try:
            for _ in range(3):
                sink.update(rollups=False)
                sink._stale, sink._incremental = True, False  # force a full derive again: the longest overlap
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=update, args=(s,)) for s in sinks]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    for sink in sinks:
        sink.update(rollups=True)
        run_id = store.get_run(sink.run).id
        live = _snapshot(store, run_id)
        derived.build(store, run_id)
        assert _snapshot(store, run_id) == live and live["deliveries"]


def test_background_updates_wait_while_the_store_spent_its_derive_budget(store: DuckDBStore) -> None:
    """Many live runs share one store: once derives took more than the budget of its recent time, a new height
    does not start another background update (counted), so the events' own writes are not starved."""
    rows = [{"ts": 1_000 + h, "kind": "step", "step": "propose", "height": h, "round": 0} for h in range(1, 6)]
    sink = StoreSink(store, "live", "cometbft", update_every_s=0.0, derive_budget=0.3)
    sink.write("n0", rows[:1])
    sink.write("n0", rows[1:2])  # a new height, budget free: an update starts
    sink.wait()
    assert sink.updates == 1 and sink.updates_deferred == 0
    now = time.monotonic()
    derived._add_busy(store, now - derived.BUSY_WINDOW_S / 2, now)  # another run's derives took half the window
    assert derived.busy_share(store) > 0.3
    sink.write("n0", rows[2:3])
    sink.wait()
    assert sink.updates == 1 and sink.updates_deferred == 1
    sink.flush()  # an explicit flush still brings the run up to date
    assert derived.is_current(store, store.get_run("live").id)


def test_live_runs_sharing_a_store_share_its_rollup_refreshes(store: DuckDBStore) -> None:
    """Rollups are recomputed over a run's whole retained window: with many live runs on one store, each run
    refreshes them at most every ``rollups_every_s`` times the live runs writing to the store, so the store
    spends on them what one run would (between refreshes, answers are computed live)."""
    now = [0.0]
    sinks = [StoreSink(store, f"live{i}", "cometbft", update_every_s=None, rollups_every_s=10.0,
                       clock=lambda: now[0]) for i in range(3)]  # fmt: skip
    row = {"ts": 1, "kind": "step", "step": "propose", "round": 0}
    refreshed: list[list[bool]] = []
    for h in range(1, 8):  # every 12 s: more than rollups_every_s, less than three times it
        for sink in sinks:
            sink.write("n0", [row | {"height": h}])
        refreshed.append([sink._last_rollups == now[0] if sink.update() else False for sink in sinks])
        now[0] += 12.0
    # t=0 refreshes; then each waits 3 x 10 s: t=36 (h=4), t=72 (h=7)
    assert refreshed == [[True] * 3, [False] * 3, [False] * 3, [True] * 3, [False] * 3, [False] * 3, [True] * 3]
    sinks[0].write("n0", [row | {"height": 9}])
    now[0] += 30.0  # the other runs stopped writing long ago: this one alone again
    assert sinks[0].update() and sinks[0]._last_rollups == now[0]


def test_rollups_are_stored_in_one_statement_replacing_the_old_ones_at_once(store: DuckDBStore) -> None:
    """A rollup refresh wrote one INSERT per metric, each a writer-lock turn (22 per refresh: a third of the
    writer's statement time following 20 networks); now one DELETE and one INSERT, in one transaction."""
    from bftscope.analytics import rollups as engine

    run_id = store.get_or_create_run("r", "cometbft").id
    metrics = {f"m{i}": (lambda s, r, w, i=i: {"i": i, "window": w}) for i in range(5)}
    encode = lambda name, value: json.dumps([name, value]).encode()  # noqa: E731
    engine.refresh(store, run_id, {"old": metrics["m0"]}, encode, None)
    statements: list[str] = []
    real = store.execute

    def spy(sql: str, params: Any = None) -> Any:
        statements.append(sql.split()[0].upper())
        return real(sql, params)

    store.execute = spy  # type: ignore[method-assign]
    try:
        assert engine.refresh(store, run_id, metrics, encode, "whole") == 5
    finally:
        del store.execute
    assert statements == ["DELETE", "INSERT"]
    stored = store.query("SELECT name, value FROM rollups WHERE run_id = ? ORDER BY name", [run_id])
    assert stored == [(f"m{i}", json.dumps([f"m{i}", {"i": i, "window": "whole"}])) for i in range(5)]


def test_a_run_of_only_kinds_the_derive_never_reads_skips_it_with_the_same_answers(store: DuckDBStore) -> None:
    """A followed CometBFT network's events (votes added, steps, commits) are none of the kinds the derived
    tables, restarts and inferred ids are built from, so its updates skip the derive — which held the store's
    writer for scans of the whole store and found nothing. The tables and every answer equal a full rebuild;
    the first event of a kind the derive reads brings it back."""
    family = type(registry.family("cometbft"))
    calls: list[int] = []
    real = family.derive_incremental

    def counted(self: Any, s: Any, run_id: int, from_height: int) -> dict[str, int]:
        calls.append(from_height)
        return real(self, s, run_id, from_height)

    rows = [{"ts": 1_000 * h + i, "kind": kind, "height": h, "round": 0, "vote_type": "prevote", "msg_type": "vote",
             "validator": f"V{i}", "validator_index": i, "step": "propose" if kind == "step" else None}
            for h in range(1, 6) for i, kind in enumerate(["step", "vote_added", "vote_added", "block_committed"])]
    sink = StoreSink(store, "live", "cometbft", update_every_s=None)
    family.derive_incremental = counted  # type: ignore[method-assign]
    try:
        sink.write("n0", rows[:8])
        sink.update()  # the first: a full rebuild (the run was not current)
        for h in range(2, 5):
            sink.write("n0", rows[4 * h: 4 * h + 4])
            sink.update()
        assert calls == [] and sink.updates == 4
        run_id = store.get_run("live").id
        live = _snapshot(store, run_id)
        derived.build(store, run_id)
        assert _snapshot(store, run_id) == live
        received = {"ts": 5_500, "kind": "msg_received", "height": 5, "round": 0, "vote_type": "prevote",
                    "msg_type": "vote", "validator": "V1", "validator_index": 1, "peer": "ab" * 20}  # fmt: skip
        sink.write("n1", [received])
        sink.update()
        assert calls == [5]
    finally:
        family.derive_incremental = real  # type: ignore[method-assign]
    assert store.query("SELECT count(*) FROM vote_arrivals WHERE run_id = ?", [run_id]) == [(1,)]


def test_dropping_rollups_that_are_not_stored_takes_no_writer_turn(store: DuckDBStore) -> None:
    """Every update between two refreshes drops the run's stored answers: with none stored (the usual case once
    the first update after a refresh dropped them) that was a DELETE under the writer lock for nothing — a
    third of the writer's statement time following 20 networks. A stored one is still dropped."""
    from bftscope.analytics import rollups as engine

    run_id = store.get_or_create_run("r", "cometbft").id
    statements: list[str] = []
    real = store.execute

    def spy(sql: str, params: Any = None) -> Any:
        statements.append(sql.split()[0].upper())
        return real(sql, params)

    store.execute = spy  # type: ignore[method-assign]
    try:
        engine.drop(store, run_id)
        assert statements == []
        store.execute("INSERT INTO rollups VALUES (?, 'm', '1')", [run_id])
        engine.drop(store, run_id)
    finally:
        del store.execute
    assert statements == ["INSERT", "DELETE"]
    assert store.query("SELECT count(*) FROM rollups WHERE run_id = ?", [run_id]) == [(0,)]
