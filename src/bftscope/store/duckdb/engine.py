"""The embedded store: one DuckDB file.

One process owns the file for writing (DuckDB allows a single writer process). Inside it, writes
are serialised by a lock and event batches are appended as Arrow tables (columnar, no per-row
SQL). Reads run on per-thread cursors and every query is interrupted after
``Settings.query_timeout_s`` so a bad query cannot pin a core forever. Runs, nodes and sources are
in :mod:`.catalog`.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from bftscope.config import MEMORY_SIZE, Settings
from bftscope.errors import InputError, NotFoundError, QueryTimeoutError, StoreError
from bftscope.model import ROW_SCHEMA
from bftscope.store.duckdb.catalog import Catalog
from bftscope.store.duckdb.dialect import DUCKDB, DuckDBDialect
from bftscope.store.duckdb.statements import bind
from bftscope.store.duckdb.watchdog import Watchdog
from bftscope.store.migrate import apply_migrations

__all__ = ["ROW_GROUP_ROWS", "DuckDBStore"]

ROW_GROUP_ROWS = 122_880  # DuckDB's row group size
_WRITE_GROUPS = 2  # held rows are written once they fill this many row groups


_WATCHDOG = Watchdog()  # one thread for every store's time limits


class DuckDBStore(Catalog):
    """:class:`bftscope.store.Store` on an embedded DuckDB database."""

    dialect: DuckDBDialect = DUCKDB

    def __init__(self, con: duckdb.DuckDBPyConnection, settings: Settings, *, read_only: bool = False) -> None:
        self._con = con
        self._settings = settings
        self._lock = threading.RLock()
        self._next_event_id: dict[int, int] = {}
        self._held: list[pa.Table] = []  # event rows not yet written (append_events' hold_partial)
        self._held_rows = 0
        self._hold_timer: threading.Timer | None = None  # writes rows held with append_events' max_hold_s
        self._closed = False
        self._local = threading.local()
        self.read_only = read_only
        self.files_dir: Path | None = None
        self._live_lock = threading.Lock()
        self._live_writers = 0

    @classmethod
    def open(cls, path: Path | str, settings: Settings, *, read_only: bool = False) -> DuckDBStore:
        """Open the database file (``":memory:"`` for a throw-away store), creating and migrating it."""
        config: dict[str, Any] = {"memory_limit": settings.duckdb_memory_limit}
        if settings.duckdb_threads:
            config["threads"] = settings.duckdb_threads
        target = str(path)
        if target != ":memory:":
            Path(target).parent.mkdir(parents=True, exist_ok=True)
            if read_only and not Path(target).exists():
                raise NotFoundError(f"no store at {target}; ingest something first")
        try:
            con = duckdb.connect(target, read_only=read_only, config=config)
        except duckdb.IOException as exc:
            held = re.search(r"Conflicting lock is held in .*?\(PID (\d+)\)", str(exc))
            if held:  # the usual case: one writer per store, and a server or an ingest is that writer
                raise StoreError(
                    f"cannot open the store at {target}: another process (PID {held.group(1)}) holds it — a"
                    " running `bftscope serve` or ingest; stop it first, or use another --data-dir"
                ) from exc
            raise StoreError(f"cannot open the store at {target}: {exc}") from exc
        if not read_only:
            apply_migrations(con, "duckdb")
        store = cls(con, settings, read_only=read_only)
        if target != ":memory:":
            store.files_dir = Path(target).with_name(Path(target).name + ".files")
        if not read_only:
            # Only one process can open the file for writing, so a source still "ingesting" now was left by
            # an ingest that died (kill -9, power loss): without this, its events would count in one
            # listing and not in another until the same file is ingested again.
            store.recover_interrupted()
        return store

    # --- reads -----------------------------------------------------------------------------

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        cur: duckdb.DuckDBPyConnection | None = getattr(self._local, "cur", None)
        if cur is None:
            cur = self._con.cursor()
            self._local.cur = cur
        return cur

    @contextmanager
    def _time_limit(self, cur: duckdb.DuckDBPyConnection) -> Iterator[None]:
        deadline = _WATCHDOG.after(self._settings.query_timeout_s, cur.interrupt)
        fired = deadline.fired
        try:
            yield
        except duckdb.InterruptException as exc:
            if not fired.is_set():  # not our time limit: a Ctrl-C, to be handled as one
                raise KeyboardInterrupt from exc
            raise QueryTimeoutError(
                f"query exceeded its time limit of {self._settings.query_timeout_s:g} s"
            ) from exc
        except duckdb.Error as exc:
            if fired.is_set():
                raise QueryTimeoutError(
                    f"query exceeded its time limit of {self._settings.query_timeout_s:g} s"
                ) from exc
            raise StoreError(f"query failed: {exc}") from exc
        finally:
            deadline.cancel()

    def query(self, sql: str, params: dict[str, Any] | list[Any] | None = None) -> list[tuple[Any, ...]]:
        """Run a read query with bound parameters and the store's time limit."""
        cur = self._cursor()
        with self._time_limit(cur):
            return cur.execute(bind(sql, params), params or []).fetchall()

    def query_with(
        self, sql: str, params: dict[str, Any] | list[Any] | None, tables: dict[str, pa.Table]
    ) -> list[tuple[Any, ...]]:
        """Like :meth:`query`, with Arrow ``tables`` readable by name for this query only (small lookups a
        caller keeps between queries instead of computing them in each)."""
        cur = self._cursor()
        with self._time_limit(cur):
            for name, table in tables.items():
                cur.register(name, table)
            try:
                return cur.execute(bind(sql, params), params or []).fetchall()
            finally:
                for name in tables:
                    cur.unregister(name)

    def query_arrow(self, sql: str, params: dict[str, Any] | list[Any] | None = None) -> pa.Table:
        """Like :meth:`query`, as an Arrow table (a relation's result: no extra copy of the rows)."""
        cur = self._cursor()
        with self._time_limit(cur):
            return cur.sql(bind(sql, params), params=params or None).to_arrow_table()

    def _write(self, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        if self.read_only:
            raise StoreError("the store is open read-only")
        with self._lock:
            self._write_held(whole_groups_only=False)
            return self._con.execute(sql, params or []).fetchall()

    # --- events ----------------------------------------------------------------------------

    def append_events(
        self, run_id: int, node: int, source_id: int, table: pa.Table, *, hold_partial: bool = False,
        max_hold_s: float | None = None,
    ) -> int:
        """Append a batch of parsed rows (schema :data:`bftscope.model.ROW_SCHEMA`). Returns rows added.

        With ``hold_partial`` (bulk ingest), only whole row groups are written now and the rest is
        held until the next append, :meth:`flush_events` or any write of the store (so no change is
        made without them). Reads do not wait for the writer: held rows of a source still being
        ingested are visible once the ingest flushes them. Why: DuckDB writes a
        large insert straight to the file in row groups of 122,880 rows, and a partly filled last row
        group is rewritten by the next checkpoint — with 262,144-row inserts that rewrite cost as much
        as a third of the insert itself (measured: 0.7 s of checkpoint for 1.8 M rows, 0.007 s when
        every insert was a whole number of row groups).
        """
        n = table.num_rows
        if n == 0:
            return 0
        if not table.schema.equals(ROW_SCHEMA):
            table = table.cast(ROW_SCHEMA)
        with self._lock:
            if self.read_only:
                raise StoreError("the store is open read-only")
            start = self._next_event_id.get(run_id)
            if start is None:
                row = self._con.execute(
                    "SELECT coalesce(max(id), 0) + 1 FROM events WHERE run_id = ?", [run_id]
                ).fetchall()[0]
                start = int(row[0])
            self._next_event_id[run_id] = start + n
            full = pa.Table.from_arrays(
                [
                    pa.array(np.full(n, run_id, dtype=np.int32)),
                    pa.array(np.arange(start, start + n, dtype=np.int64)),
                    pa.array(np.full(n, node, dtype=np.int32)),
                    pa.array(np.full(n, source_id, dtype=np.int32)),
                    *table.columns,
                ],
                names=["run_id", "id", "node", "source", *table.column_names],
            )
            self._held.append(full)
            self._held_rows += n
            if not hold_partial:
                self._write_held(whole_groups_only=False)
            elif self._held_rows >= _WRITE_GROUPS * ROW_GROUP_ROWS:
                self._write_held(whole_groups_only=True)
            elif max_hold_s is not None and self._hold_timer is None:
                # Live sources: every insert costs DuckDB a fixed ~5-15 ms, so the small appends of many followed
                # networks are written together, at the latest max_hold_s after the first of them (20 networks:
                # 20 inserts of 50 rows 296 ms, held and written at once 33 ms).
                self._hold_timer = threading.Timer(max_hold_s, self._write_due)
                self._hold_timer.daemon = True
                self._hold_timer.start()
        return int(n)

    def _write_due(self) -> None:
        with self._lock:
            self._hold_timer = None
            if not self._closed:
                self._write_held(whole_groups_only=False)

    @contextmanager
    def memory_limit(self, limit: str) -> Iterator[None]:
        """Run a block with DuckDB's ``memory_limit`` at ``limit`` (a size such as ``"300MB"``), then set
        it back to the configured one. The ingest uses it so that DuckDB's buffer pool leaves room for
        the parser processes while they run."""
        if not re.fullmatch(MEMORY_SIZE, limit):
            raise InputError(f"not a memory size: {limit!r}")
        with self._lock:
            self._con.execute(f"SET memory_limit = '{limit}'")  # validated above; SET takes no parameters
        try:
            yield
        finally:
            with self._lock:
                self._con.execute(f"SET memory_limit = '{self._settings.duckdb_memory_limit}'")

    def flush_events(self) -> None:
        """Write every held event row (see :meth:`append_events`)."""
        if self._held_rows:
            with self._lock:
                self._write_held(whole_groups_only=False)

    def _write_held(self, *, whole_groups_only: bool) -> None:
        if not self._held_rows:
            return
        batch = pa.concat_tables(self._held)
        n = batch.num_rows
        keep = n % ROW_GROUP_ROWS if whole_groups_only else 0
        if keep:
            self._held, self._held_rows = [batch.slice(n - keep)], keep
            batch = batch.slice(0, n - keep)
        else:
            self._held, self._held_rows = [], 0
        # One chunk: DuckDB scans the chunks of an Arrow table on several threads and then merges
        # their row groups, which costs about a fifth more CPU than inserting one chunk.
        self._con.register("_bftscope_batch", batch.combine_chunks())
        try:
            self._con.execute("INSERT INTO events SELECT * FROM _bftscope_batch")
        finally:
            self._con.unregister("_bftscope_batch")

    def execute(self, sql: str, params: dict[str, Any] | list[Any] | None = None) -> list[tuple[Any, ...]]:
        """Run a write statement (derived-table rebuilds) under the writer lock and the time limit.

        Returns the statement's rows, if any: a read of the writer's temporary tables goes here too.
        """
        if self.read_only:
            raise StoreError("the store is open read-only")
        self.flush_events()
        with self._lock, self._time_limit(self._con):
            return self._con.execute(bind(sql, params), params or []).fetchall()

    def execute_with(
        self, sql: str, params: dict[str, Any] | list[Any] | None, tables: dict[str, pa.Table]
    ) -> list[tuple[Any, ...]]:
        """Like :meth:`execute`, with Arrow ``tables`` readable by name for this statement only (a batch
        inserted with ``INSERT … SELECT … FROM name``); inside :meth:`transaction` it joins the transaction.
        Events held for batching (:meth:`append_events`) are not written first: they belong to other tables, and
        to no caller's transaction."""
        if self.read_only:
            raise StoreError("the store is open read-only")
        with self._lock, self._time_limit(self._con):
            for name, table in tables.items():
                self._con.register(name, table)
            try:
                return self._con.execute(bind(sql, params), params or []).fetchall()
            finally:
                for name in tables:
                    self._con.unregister(name)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Run a block of :meth:`execute` calls as one transaction that no other writer interleaves with.

        The writer lock is held throughout, so a check and the write it guards (the first user, a unique
        name) are atomic. Reads inside the block must go through :meth:`execute`: :meth:`query` runs on
        another cursor and does not see the block's own uncommitted writes.
        """
        if self.read_only:
            raise StoreError("the store is open read-only")
        with self._lock:
            self._write_held(whole_groups_only=False)  # held events belong to nobody's transaction
            self._con.execute("BEGIN")
            try:
                yield
            except BaseException:
                self._con.execute("ROLLBACK")
                raise
            try:
                self._con.execute("COMMIT")
            except duckdb.Error as exc:
                raise StoreError(f"commit failed: {exc}") from exc

    def delete_run(self, run_id: int) -> None:
        """Remove a run and everything derived from it, in one transaction."""
        if self.read_only:
            raise StoreError("the store is open read-only")
        with self._lock:
            self._write_held(whole_groups_only=False)
            self._con.execute("BEGIN")
            try:
                for table in ("events", "sources", "nodes", "vote_arrivals", "deliveries", "unmatched_receipts",
                              "rollups", "validator_sets", "validator_priorities", "retention_marks",
                              "missed_votes", "height_summaries"):  # fmt: skip
                    self._con.execute(f"DELETE FROM {table} WHERE run_id = ?", [run_id])
                self._con.execute("DELETE FROM runs WHERE id = ?", [run_id])
                self._con.execute("COMMIT")
            except Exception:
                self._con.execute("ROLLBACK")
                raise
            self._next_event_id.pop(run_id, None)

    def derived_version(self, run_id: int) -> int | None:
        rows = self.query("SELECT derived_version FROM runs WHERE id = ?", [run_id])
        return rows[0][0] if rows else None

    def set_derived_version(self, run_id: int, version: int | None) -> None:
        self._write("UPDATE runs SET derived_version = ? WHERE id = ?", [version, run_id])

    def recover_interrupted(self) -> int:
        with self._lock:
            stale = self._write("SELECT id, run_id FROM sources WHERE status = 'ingesting'")
            for sid, run_id in stale:
                self.discard_source(sid)
                self.set_derived_version(run_id, None)
            for run_id in {r for _, r in stale}:
                # Its only sources were the dead ingest's: the run was that ingest's, which would have
                # removed it on any other failure.
                if not self._write("SELECT 1 FROM sources WHERE run_id = ? LIMIT 1", [run_id]):
                    self.delete_run(run_id)
            return len(stale)

    def checkpoint(self) -> None:
        with self._lock:
            self._write_held(whole_groups_only=False)
            self._con.execute("CHECKPOINT")

    def live_writer(self) -> Callable[[], None]:
        """A live writer (a followed network's sink) is running; returns the function that says it ended (once;
        a second call does nothing). While one or more run, DuckDB is tuned for a stream of small inserts beside
        busy Python threads:

        - it works on one thread fewer than the machine has cores (at least one), so the writers' threads keep a
          core while DuckDB inserts and checkpoints (unless ``duckdb_threads`` is set);
        - it checkpoints every ``duckdb_live_checkpoint`` of WAL instead of 16 MB: every checkpoint rewrites and
          recompresses the tables' last, partly filled row groups.

        Measured on 2 cores (bench/casper_bench.py at 20,000 events/s; docs/casper.md "Speed"): DuckDB on both
        cores stalled the writer's threads in its checkpoints (p99 receipt -> subscriber 523 ms, on one 147 ms);
        inserting 1.2 M events of the bench's mix 4,000 at a time cost 22.0 us each with 16 MB checkpoints, 16.6
        with 64 MB, 9.8 with 128 MB and 256 MB: between checkpoints the cost of an insert grows with what is not
        yet checkpointed.
        """
        if self.read_only:
            return lambda: None
        with self._live_lock:
            self._live_writers += 1
            if self._live_writers == 1:
                self._set_global("checkpoint_threshold", f"'{self._settings.duckdb_live_checkpoint}'")
                if not self._settings.duckdb_threads:
                    self._set_global("threads", str(max(1, (os.cpu_count() or 1) - 1)))
        ended = False

        def end() -> None:
            nonlocal ended
            with self._live_lock:  # two callers racing end it once
                if ended:
                    return
                ended = True
                self._live_writers -= 1
                if self._live_writers == 0 and not self._closed:
                    self._set_global("checkpoint_threshold", None)
                    if not self._settings.duckdb_threads:
                        self._set_global("threads", None)

        return end

    def _set_global(self, name: str, value: str | None) -> None:
        """SET (or RESET, ``value`` None) a setting of the whole database; ``value``: SQL literal, validated by
        the caller (settings pattern, an int). A cursor of its own: the writer connection may be inside another
        thread's transaction."""
        cur = self._con.cursor()
        try:
            cur.execute(f"RESET GLOBAL {name}" if value is None else f"SET GLOBAL {name} = {value}")
        finally:
            cur.close()

    def close(self) -> None:
        with self._lock:
            if self._hold_timer is not None:
                self._hold_timer.cancel()
                self._hold_timer = None
            if not self.read_only:
                self._write_held(whole_groups_only=False)
            self._closed = True
            self._con.close()
