"""Writes and recovery on every engine: transactions, derived versions, time limits, a dead ingest's leftovers."""

from __future__ import annotations

import pytest

from bftscope.errors import QueryTimeoutError
from bftscope.store import Store
from tests.store.conformance.conftest import Engine, Opener
from tests.store.rows import batch


def test_transactions_commit_together_or_not_at_all(store: Store) -> None:
    run = store.get_or_create_run("r", "cometbft")
    with store.transaction():
        store.execute("UPDATE runs SET derived_version = ? WHERE id = ?", [5, run.id])
        # reads inside the block go through execute and see its own writes
        assert store.execute("SELECT derived_version FROM runs WHERE id = ?", [run.id]) == [(5,)]
    assert store.derived_version(run.id) == 5
    with pytest.raises(RuntimeError), store.transaction():
        store.execute("UPDATE runs SET derived_version = ? WHERE id = ?", [6, run.id])
        raise RuntimeError("abort")
    assert store.derived_version(run.id) == 5


def test_derived_version_is_kept_per_run(store: Store) -> None:
    a, b = store.get_or_create_run("a", "cometbft"), store.get_or_create_run("b", "cometbft")
    assert store.derived_version(a.id) is None
    store.set_derived_version(a.id, 2)
    assert (store.derived_version(a.id), store.derived_version(b.id)) == (2, None)
    store.set_derived_version(a.id, None)
    assert store.derived_version(a.id) is None
    assert store.derived_version(999) is None  # no such run


def test_query_time_limit(engine: Engine, open_engine: Opener) -> None:
    store = open_engine(query_timeout_s=0.2)
    with pytest.raises(QueryTimeoutError):
        store.query(engine.slow_query)
    with pytest.raises(QueryTimeoutError):  # Arrow results too
        store.query_arrow(engine.slow_query)
    assert store.query("SELECT 1") == [(1,)]  # the store still answers


def test_opening_removes_what_a_dead_ingest_left_half_written(open_engine: Opener) -> None:
    """Only one process writes the store: a source still "ingesting" when it is opened was left by a writer
    that died. Its events go (they were never counted as ingested) and its run's derived tables are stale."""
    store = open_engine()
    run = store.get_or_create_run("r", "cometbft")
    done = store.begin_source(run.id, 0, "done", "x", "h1", 1)
    store.append_events(run.id, 0, done.id, batch(5))
    store.finish_source(done.id, lines=5, events=5, skipped={}, warnings=[])
    store.set_derived_version(run.id, 1)
    cut = store.begin_source(run.id, 0, "cut", "x", "h2", 1)
    store.append_events(run.id, 0, cut.id, batch(9))
    store.close()  # as if the process had been killed here
    store = open_engine()
    assert [(s.name, s.status) for s in store.sources(run.id)] == [("done", "complete")]
    assert store.query("SELECT source, count(*) FROM events GROUP BY 1") == [(done.id, 5)]
    assert store.derived_version(run.id) is None
    assert store.list_runs()[0]["events"] == 5


def test_recover_interrupted_reports_what_it_removed(store: Store) -> None:
    run = store.get_or_create_run("r", "cometbft")
    cut = store.begin_source(run.id, 0, "cut", "x", "h", 1)
    store.append_events(run.id, 0, cut.id, batch(4))
    store.set_derived_version(run.id, 1)
    assert store.recover_interrupted() == 1
    assert store.sources(run.id) == [] and store.query("SELECT count(*) FROM events") == [(0,)]
    assert store.derived_version(run.id) is None
    assert store.recover_interrupted() == 0
