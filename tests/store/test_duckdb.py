"""The embedded store: migrations, runs, node resolution, sources, appends, cursors, time limits."""

from __future__ import annotations

import pyarrow as pa
import pytest

from bftscope.config import Settings
from bftscope.errors import InputError, NotFoundError, QueryTimeoutError
from bftscope.model import EventBatch
from bftscope.store import DuckDBStore
from bftscope.store.duckdb import ROW_GROUP_ROWS
from bftscope.store.eventquery import EventFilter, list_events
from bftscope.store.migrate import migration_files


def _batch(n: int, ts0: int = 1_000) -> pa.Table:
    b = EventBatch()
    for i in range(n):
        b.rows.append((ts0 + i // 3, "step", i, 0, "prevote", None, None, None, None, None, None, None, None, None,
                       None, i, None))  # fmt: skip
    return b.take()


def test_migrations_apply_once(settings: Settings) -> None:
    store = DuckDBStore.open(settings.store_path, settings)
    store.close()
    store = DuckDBStore.open(settings.store_path, settings)
    versions = [r[0] for r in store.query("SELECT version FROM schema_migrations ORDER BY version")]
    assert versions == [v for v, _, _ in migration_files("duckdb")]
    store.close()


def test_nodes_resolve_by_p2p_id_or_validator(settings: Settings) -> None:
    store = DuckDBStore.open(":memory:", settings)
    run = store.get_or_create_run("r1", "cometbft")
    a = store.resolve_node(run.id, p2p_id="aa", validator=None, moniker=None, label="node0")
    b = store.resolve_node(run.id, p2p_id=None, validator="VV", moniker="m", label="node0-wal")
    a2 = store.resolve_node(run.id, p2p_id="aa", validator="WW", moniker=None, label="x")
    assert a.node == a2.node != b.node
    assert a2.validator == "WW" and a2.label == "node0"  # learned, label kept
    assert [n.node for n in store.nodes(run.id)] == [0, 1]
    with pytest.raises(NotFoundError):
        store.get_run("nope")


def test_append_assigns_ids_and_cursor_pages_without_repeats(settings: Settings) -> None:
    store = DuckDBStore.open(":memory:", settings)
    run = store.get_or_create_run("r", "cometbft")
    node = store.resolve_node(run.id, p2p_id="aa", validator=None, moniker=None, label="n")
    src = store.begin_source(run.id, node.node, "f.log", "cometbft-json", "h1", 10)
    assert store.append_events(run.id, node.node, src.id, _batch(50)) == 50
    assert store.append_events(run.id, node.node, src.id, _batch(25, ts0=1_005)) == 25
    store.finish_source(src.id, lines=75, events=75, skipped={"not JSON": 2}, warnings=[])
    ids = [r[0] for r in store.query("SELECT id FROM events ORDER BY id")]
    assert ids == list(range(1, 76))
    seen: list[int] = []
    after = None
    while True:
        page = list_events(store, run.id, EventFilter(), limit=7, after=after)
        if not page:
            break
        seen.extend(e["id"] for e in page)
        after = (page[-1]["ts"], page[-1]["id"])
    assert sorted(seen) == ids and len(seen) == len(set(seen))  # every event exactly once
    ordered = [r[0] for r in store.query("SELECT id FROM events ORDER BY ts, id")]
    assert seen == ordered
    # `before` returns the page just before a position
    pos = (page_ts := store.query("SELECT ts, id FROM events ORDER BY ts, id LIMIT 1 OFFSET 40")[0])
    prev = list_events(store, run.id, EventFilter(), limit=5, before=(pos[0], pos[1]))
    assert [e["id"] for e in prev] == ordered[35:40]
    assert page_ts
    assert store.find_source(run.id, "h1").skipped == {"not JSON": 2}  # type: ignore[union-attr]


def test_filters_are_bound_parameters(settings: Settings) -> None:
    store = DuckDBStore.open(":memory:", settings)
    run = store.get_or_create_run("r", "cometbft")
    src = store.begin_source(run.id, 0, "f", "x", "h", 1)
    store.append_events(run.id, 0, src.id, _batch(10))
    evil = "step' OR '1'='1"
    assert list_events(store, run.id, EventFilter(kinds=[evil])) == []
    assert len(list_events(store, run.id, EventFilter(kinds=["step"], min_height=3, max_height=5))) == 3


def test_failed_source_leaves_nothing(settings: Settings) -> None:
    store = DuckDBStore.open(":memory:", settings)
    run = store.get_or_create_run("r", "cometbft")
    src = store.begin_source(run.id, 0, "f", "x", "h", 1)
    store.append_events(run.id, 0, src.id, _batch(10))
    store.discard_source(src.id)
    assert store.query("SELECT count(*) FROM events")[0][0] == 0
    assert store.find_source(run.id, "h") is None


def test_query_time_limit(tmp_path: object) -> None:
    settings = Settings(query_timeout_s=0.2)
    store = DuckDBStore.open(":memory:", settings)
    with pytest.raises(QueryTimeoutError):
        store.query("SELECT count(*) FROM range(100000000000) a")
    with pytest.raises(QueryTimeoutError):  # Arrow results too (run as a relation)
        store.query_arrow("SELECT count(*) FROM range(100000000000) a")
    assert store.query_arrow("SELECT $x AS x", {"x": 7}).to_pylist() == [{"x": 7}]  # named parameters


def test_held_rows_fill_whole_row_groups_and_are_never_missed(settings: Settings) -> None:
    """Bulk appends write whole row groups and hold the rest until a flush or any write."""
    store = DuckDBStore.open(settings.store_path, settings)
    run = store.get_or_create_run("r", "cometbft")
    a = store.begin_source(run.id, 0, "a", "x", "ha", 1)
    b = store.begin_source(run.id, 0, "b", "x", "hb", 1)
    chunk = pa.concat_tables([_batch(1000)] * 100)  # 100,000 rows
    for src in (a, b, a, b):  # 400,000 rows from two interleaved sources
        store.append_events(run.id, 0, src.id, chunk, hold_partial=True)
    assert store.query("SELECT count(*) FROM events")[0][0] == 2 * ROW_GROUP_ROWS  # whole groups (154,240 held)
    store.flush_events()
    assert store.query("SELECT count(*) FROM events")[0][0] == 400_000
    ids = [r[0] for r in store.query("SELECT id FROM events ORDER BY id")]
    assert ids == list(range(1, 400_001))
    store.append_events(run.id, 0, b.id, _batch(10), hold_partial=True)
    store.discard_source(b.id)  # held rows of a discarded source go too
    assert store.query("SELECT source, count(*) FROM events GROUP BY 1") == [(a.id, 200_000)]
    store.append_events(run.id, 0, a.id, _batch(7), hold_partial=True)
    store.finish_source(a.id, lines=200_007, events=200_007, skipped={}, warnings=[])
    store.close()  # closing writes held rows
    store = DuckDBStore.open(settings.store_path, settings)
    assert store.query("SELECT count(*) FROM events")[0][0] == 200_007
    store.close()


def test_opening_removes_what_a_dead_ingest_left_half_written(settings: Settings) -> None:
    """Only one process writes the file: a source still "ingesting" when it is opened was left by a writer
    that died. Its events go (they were never counted as ingested) and its run's derived tables are stale."""
    store = DuckDBStore.open(settings.store_path, settings)
    run = store.get_or_create_run("r", "cometbft")
    done = store.begin_source(run.id, 0, "done", "x", "h1", 1)
    store.append_events(run.id, 0, done.id, _batch(5))
    store.finish_source(done.id, lines=5, events=5, skipped={}, warnings=[])
    store.set_derived_version(run.id, 1)
    cut = store.begin_source(run.id, 0, "cut", "x", "h2", 1)
    store.append_events(run.id, 0, cut.id, _batch(9))
    store.close()  # as if the process had been killed here
    store = DuckDBStore.open(settings.store_path, settings)
    assert [(s.name, s.status) for s in store.sources(run.id)] == [("done", "complete")]
    assert store.query("SELECT source, count(*) FROM events GROUP BY 1") == [(done.id, 5)]
    assert store.derived_version(run.id) is None
    assert store.list_runs()[0]["events"] == 5
    store.close()


def test_memory_limit_is_set_for_a_block_and_restored(settings: Settings) -> None:
    store = DuckDBStore.open(":memory:", settings)

    def current() -> str:
        return str(store.query("SELECT current_setting('memory_limit')")[0][0])

    before = current()
    with store.memory_limit("300MB"):
        assert current() == "286.1 MiB"  # DuckDB shows 300 MB in MiB
    assert current() == before
    with pytest.raises(InputError), store.memory_limit("300MB'; DROP TABLE events; --"):
        pass
    assert current() == before
    with pytest.raises(ValueError):
        Settings(ingest_parse_memory_limit="lots")
