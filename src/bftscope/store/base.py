"""The :class:`Store` interface and the records it exchanges.

A store keeps runs, their nodes, the sources ingested into them and their events. Writes of events
go through one writer (:meth:`Store.append_events`); reads are SQL in the store's dialect with a
time limit (:meth:`Store.query`).
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

import pyarrow as pa

__all__ = ["NodeRecord", "RunRecord", "SourceRecord", "Store"]


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


class Store(Protocol):
    """What the ingest pipeline, analytics and API need from a storage backend."""

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
        self, run_id: int, node: int, name: str, fmt: str, content_hash: str, size: int
    ) -> SourceRecord: ...

    def finish_source(
        self, source_id: int, *, lines: int, events: int, skipped: dict[str, int], warnings: list[str]
    ) -> None: ...

    def discard_source(self, source_id: int) -> None: ...

    def append_events(
        self, run_id: int, node: int, source_id: int, table: pa.Table, *, hold_partial: bool = False
    ) -> int: ...

    def flush_events(self) -> None: ...

    def memory_limit(self, limit: str) -> AbstractContextManager[None]:
        """Run a block with the store's memory limit set to ``limit`` (ingest phases); a no-op where the
        backend has none of its own."""
        ...

    def execute(self, sql: str, params: dict[str, Any] | list[Any] | None = None) -> list[tuple[Any, ...]]: ...

    def query(self, sql: str, params: dict[str, Any] | list[Any] | None = None) -> list[tuple[Any, ...]]: ...

    def sources(self, run_id: int) -> list[SourceRecord]: ...

    def query_with(
        self, sql: str, params: dict[str, Any] | list[Any] | None, tables: dict[str, pa.Table]
    ) -> list[tuple[Any, ...]]:
        """:meth:`query` with Arrow ``tables`` readable by name for this query only."""
        ...

    def query_arrow(self, sql: str, params: dict[str, Any] | list[Any] | None = None) -> pa.Table: ...

    def delete_run(self, run_id: int) -> None: ...

    def close(self) -> None: ...
