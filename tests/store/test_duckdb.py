"""What only the embedded DuckDB store does: its migrations, row-group holds, memory limit, DuckDB SQL.

What every engine must do (runs, nodes, sources, appends, paging, recovery) is in ``tests/store/conformance``.
"""

from __future__ import annotations

import pyarrow as pa
import pytest

from bftscope.config import Settings
from bftscope.errors import InputError, QueryTimeoutError
from bftscope.store import DuckDBStore
from bftscope.store.duckdb import ROW_GROUP_ROWS
from bftscope.store.migrate import migration_files
from tests.store.rows import batch


def test_migrations_apply_once(settings: Settings) -> None:
    store = DuckDBStore.open(settings.store_path, settings)
    store.close()
    store = DuckDBStore.open(settings.store_path, settings)
    versions = [r[0] for r in store.query("SELECT version FROM schema_migrations ORDER BY version")]
    assert versions == [v for v, _, _ in migration_files("duckdb")]
    store.close()


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
    chunk = pa.concat_tables([batch(1000)] * 100)  # 100,000 rows
    for src in (a, b, a, b):  # 400,000 rows from two interleaved sources
        store.append_events(run.id, 0, src.id, chunk, hold_partial=True)
    assert store.query("SELECT count(*) FROM events")[0][0] == 2 * ROW_GROUP_ROWS  # whole groups (154,240 held)
    store.flush_events()
    assert store.query("SELECT count(*) FROM events")[0][0] == 400_000
    ids = [r[0] for r in store.query("SELECT id FROM events ORDER BY id")]
    assert ids == list(range(1, 400_001))
    store.append_events(run.id, 0, b.id, batch(10), hold_partial=True)
    store.discard_source(b.id)  # held rows of a discarded source go too
    assert store.query("SELECT source, count(*) FROM events GROUP BY 1") == [(a.id, 200_000)]
    store.append_events(run.id, 0, a.id, batch(7), hold_partial=True)
    store.finish_source(a.id, lines=200_007, events=200_007, skipped={}, warnings=[])
    store.close()  # closing writes held rows
    store = DuckDBStore.open(settings.store_path, settings)
    assert store.query("SELECT count(*) FROM events")[0][0] == 200_007
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


def _setting(store: DuckDBStore, name: str) -> str:
    return str(store.query(f"SELECT current_setting('{name}')")[0][0])


def test_live_writers_tune_duckdb_while_they_run(settings: Settings) -> None:
    """While a live writer runs, DuckDB works on one thread fewer than the machine's cores (at least one) and
    checkpoints at ``duckdb_live_checkpoint`` of WAL; the last writer to end restores both, a second call of
    the same end changes nothing, and a set ``duckdb_threads`` wins."""
    import os

    store = DuckDBStore.open(settings.store_path, settings)
    threads, wal = _setting(store, "threads"), _setting(store, "checkpoint_threshold")
    first = store.live_writer()
    assert _setting(store, "threads") == str(max(1, (os.cpu_count() or 1) - 1))
    assert _setting(store, "checkpoint_threshold") == "122.0 MiB"  # 128MB, as DuckDB shows it
    second = store.live_writer()
    first()
    first()  # the same writer ending twice is one end
    assert _setting(store, "checkpoint_threshold") == "122.0 MiB"  # the other writer still runs
    second()
    assert (_setting(store, "threads"), _setting(store, "checkpoint_threshold")) == (threads, wal)
    store.close()

    pinned = settings.model_copy(update={"duckdb_threads": 2, "duckdb_live_checkpoint": "32MB"})
    store = DuckDBStore.open(settings.store_path, pinned)
    end = store.live_writer()
    assert _setting(store, "threads") == "2" and _setting(store, "checkpoint_threshold") == "30.5 MiB"
    end()
    assert _setting(store, "threads") == "2"
    store.close()
