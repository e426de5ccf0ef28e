"""The :class:`Store` interface and the records it exchanges.

A store keeps runs, their nodes, the sources ingested into them and their events. Writes of events
go through one writer (:meth:`Store.append_events`); reads are SQL in the store's dialect with a
time limit (:meth:`Store.query`).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa

from bftscope.store.dialect import Dialect

__all__ = ["NodeRecord", "RunRecord", "SourceRecord", "Store", "ping"]


@dataclass(frozen=True)
class RunRecord:
    id: int
    name: str
    chain: str
    created_at: str


@dataclass(frozen=True)
class NodeRecord:
    run_id: int
    node: int
    label: str
    p2p_id: str | None
    validator: str | None
    moniker: str | None


@dataclass(frozen=True)
class SourceRecord:
    id: int
    run_id: int
    node: int
    name: str
    format: str
    content_hash: str
    size: int
    status: str
    lines: int
    events: int
    skipped: dict[str, int]
    warnings: list[str]
    start_offset: int = 0  # where reading began: > 0 when it continues an earlier, shorter version of the file
    prefix_len: int | None = None  # the file's prefix this source completes (through its last whole line)
    prefix_hash: str | None = None  # xxh3-128 of that prefix; None where the file cannot be continued


class Store(Protocol):
    """What the ingest pipeline, analytics and API need from a storage backend."""

    @property
    def dialect(self) -> Dialect:
        """How this engine spells the SQL fragments that differ between engines."""
        ...

    read_only: bool  # opened for reading only: nothing derived can be rebuilt through it
    # a private directory beside the store for files a family keeps (the Casper write journal); None when the
    # store has no place on disk (":memory:")
    files_dir: Path | None

    def get_or_create_run(self, name: str, chain: str) -> RunRecord: ...

    def get_run(self, name: str) -> RunRecord: ...

    def list_runs(self) -> list[dict[str, Any]]: ...

    def nodes(self, run_id: int) -> list[NodeRecord]: ...

    def resolve_node(
        self,
        run_id: int,
        *,
        p2p_id: str | None,
        validator: str | None,
        moniker: str | None,
        label: str,
    ) -> NodeRecord: ...

    def find_source(self, run_id: int, content_hash: str) -> SourceRecord | None: ...

    def begin_source(
        self,
        run_id: int,
        node: int,
        name: str,
        fmt: str,
        content_hash: str,
        size: int,
        *,
        start_offset: int = 0,
        prefix_len: int | None = None,
        prefix_hash: str | None = None,
    ) -> SourceRecord: ...

    def continuable_sources(self, run_id: int, fmt: str, size: int) -> list[SourceRecord]:
        """Complete sources of the run in format ``fmt`` whose prefix a file of ``size`` bytes could start
        with, longest prefix first."""
        ...

    def trim_source(self, source_id: int, from_seq: int) -> int:
        """Remove the source's events from positions ``>= from_seq`` (a last line read while it was still
        being written); returns how many."""
        ...

    def finish_source(
        self, source_id: int, *, lines: int, events: int, skipped: dict[str, int], warnings: list[str]
    ) -> None: ...

    def discard_source(self, source_id: int) -> None: ...

    def append_events(
        self, run_id: int, node: int, source_id: int, table: pa.Table, *, hold_partial: bool = False,
        max_hold_s: float | None = None,
    ) -> int:
        """Append parsed rows. ``hold_partial``: the store may hold rows to write them in larger batches (bulk
        ingest: until :meth:`flush_events`); ``max_hold_s``: held rows are written within that many seconds
        whatever else happens (live sources: many small appends become one write, still visible at once)."""
        ...

    def flush_events(self) -> None: ...

    def live_writer(self) -> Callable[[], None]:
        """A live writer (a followed network's sink) runs until the returned function is called: the engine
        tunes itself for a stream of small inserts beside busy Python threads meanwhile (the embedded engine:
        one thread fewer, rarer checkpoints); a no-op where the engine runs elsewhere."""
        ...

    def memory_limit(self, limit: str) -> AbstractContextManager[None]:
        """Run a block with the store's memory limit set to ``limit`` (ingest phases); a no-op where the
        backend has none of its own."""
        ...

    def execute(self, sql: str, params: dict[str, Any] | list[Any] | None = None) -> list[tuple[Any, ...]]: ...

    def execute_with(
        self, sql: str, params: dict[str, Any] | list[Any] | None, tables: dict[str, pa.Table]
    ) -> list[tuple[Any, ...]]:
        """:meth:`execute` with Arrow ``tables`` readable by name for this statement only (batched inserts)."""
        ...

    def transaction(self) -> AbstractContextManager[None]:
        """Run a block of :meth:`execute` calls atomically, with no other write interleaved."""
        ...

    def query(self, sql: str, params: dict[str, Any] | list[Any] | None = None) -> list[tuple[Any, ...]]: ...

    def sources(self, run_id: int) -> list[SourceRecord]: ...

    def query_with(
        self, sql: str, params: dict[str, Any] | list[Any] | None, tables: dict[str, pa.Table]
    ) -> list[tuple[Any, ...]]:
        """:meth:`query` with Arrow ``tables`` readable by name for this query only."""
        ...

    def query_arrow(self, sql: str, params: dict[str, Any] | list[Any] | None = None) -> pa.Table: ...

    def delete_run(self, run_id: int) -> None: ...

    def derived_version(self, run_id: int) -> int | None:
        """Version of the derived tables and rollups the run holds; None when events changed since."""
        ...

    def set_derived_version(self, run_id: int, version: int | None) -> None: ...

    def recover_interrupted(self) -> int:
        """Remove what an ingest that died left half-written (its unfinished sources and their events)
        and mark their runs' derived tables stale; returns how many sources were removed."""
        ...

    def close(self) -> None: ...


def ping(store: Store) -> None:
    """Run the smallest query (readiness checks): raises the store's error when it cannot answer."""
    store.query("SELECT 1")
