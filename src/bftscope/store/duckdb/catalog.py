"""What a DuckDB store holds about its data: runs, their nodes, and the sources each ingest read.

Kept apart from :mod:`.engine` (connection, reads with their time limit, event appends, transactions), which
mixes :class:`Catalog` into :class:`~bftscope.store.duckdb.engine.DuckDBStore`: the bookkeeping rows are
few and written one at a time, the events are many and appended in Arrow batches.
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import duckdb

from bftscope.errors import InputError, NotFoundError, StoreError
from bftscope.store.base import NodeRecord, RunRecord, SourceRecord

__all__ = ["Catalog"]


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class Catalog:
    """Runs, nodes and sources of :class:`~bftscope.store.duckdb.engine.DuckDBStore` (its base class)."""

    # set by DuckDBStore.__init__
    _con: duckdb.DuckDBPyConnection
    _lock: threading.RLock
    _next_event_id: dict[int, int]

    if TYPE_CHECKING:  # defined by DuckDBStore

        def _write(self, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]: ...

        def query(self, sql: str, params: dict[str, Any] | list[Any] | None = None) -> list[tuple[Any, ...]]: ...

    # --- runs and nodes -------------------------------------------------------------------

    def get_or_create_run(self, name: str, chain: str = "cometbft") -> RunRecord:
        if not name or len(name) > 200:
            raise InputError("a run name must have 1 to 200 characters")
        with self._lock:
            rows = self._con.execute(
                "SELECT id, name, chain, created_at FROM runs WHERE name = ?", [name]
            ).fetchall()
            if not rows:
                (next_id,) = self._con.execute("SELECT coalesce(max(id), 0) + 1 FROM runs").fetchall()[0]
                self._write(
                    "INSERT INTO runs (id, name, chain, created_at) VALUES (?, ?, ?, ?)",
                    [next_id, name, chain, _now()],
                )
                rows = self._con.execute(
                    "SELECT id, name, chain, created_at FROM runs WHERE name = ?", [name]
                ).fetchall()
        rid, rname, rchain, created = rows[0]
        return RunRecord(rid, rname, rchain, created.isoformat())

    def get_run(self, name: str) -> RunRecord:
        rows = self.query("SELECT id, name, chain, created_at FROM runs WHERE name = ?", [name])
        if not rows:
            raise NotFoundError(f"no run named {name!r}")
        rid, rname, rchain, created = rows[0]
        return RunRecord(rid, rname, rchain, created.isoformat())

    def list_runs(self) -> list[dict[str, Any]]:
        rows = self.query(
            """
            SELECT r.id, r.name, r.chain, r.created_at, r.derived_version,
                   (SELECT count(*) FROM nodes n WHERE n.run_id = r.id) AS nodes,
                   (SELECT count(*) FROM sources s WHERE s.run_id = r.id AND s.status = 'complete') AS sources,
                   (SELECT coalesce(sum(s.events), 0) FROM sources s
                     WHERE s.run_id = r.id AND s.status = 'complete') AS events
            FROM runs r ORDER BY r.id
            """
        )
        return [
            {"id": r[0], "name": r[1], "chain": r[2], "created_at": r[3].isoformat(), "derived_version": r[4],
             "nodes": r[5], "sources": r[6], "events": int(r[7])}
            for r in rows
        ]

    def nodes(self, run_id: int) -> list[NodeRecord]:
        rows = self.query(
            "SELECT run_id, node, label, p2p_id, validator, moniker FROM nodes WHERE run_id = ? ORDER BY node",
            [run_id],
        )
        return [NodeRecord(*r) for r in rows]

    def resolve_node(
        self,
        run_id: int,
        *,
        p2p_id: str | None,
        validator: str | None,
        moniker: str | None,
        label: str,
    ) -> NodeRecord:
        """Find the run's node with this p2p id or validator address, or create it.

        Identity learned later (a validator address for a node first seen by p2p id only) is
        filled in; identities are never overwritten with different values.
        """
        with self._lock:
            existing = None
            for n in self.nodes(run_id):
                if (p2p_id and n.p2p_id == p2p_id) or (validator and n.validator == validator):
                    existing = n
                    break
                if not p2p_id and not validator and not n.p2p_id and not n.validator and n.label == label:
                    existing = n
                    break
            if existing is None:
                (next_node,) = self._con.execute(
                    "SELECT coalesce(max(node), -1) + 1 FROM nodes WHERE run_id = ?", [run_id]
                ).fetchall()[0]
                self._write(
                    "INSERT INTO nodes (run_id, node, label, p2p_id, validator, moniker) VALUES (?, ?, ?, ?, ?, ?)",
                    [run_id, next_node, label, p2p_id, validator, moniker],
                )
                return NodeRecord(run_id, next_node, label, p2p_id, validator, moniker)
            updated = NodeRecord(
                run_id,
                existing.node,
                existing.label,
                existing.p2p_id or p2p_id,
                existing.validator or validator,
                existing.moniker or moniker,
            )
            if updated != existing:
                self._write(
                    "UPDATE nodes SET p2p_id = ?, validator = ?, moniker = ? WHERE run_id = ? AND node = ?",
                    [updated.p2p_id, updated.validator, updated.moniker, run_id, existing.node],
                )
            return updated

    # --- sources ---------------------------------------------------------------------------

    _SOURCE_COLS = ("id, run_id, node, name, format, content_hash, size, status, lines, events, skipped, warnings,"
                    " start_offset, prefix_len, prefix_hash")  # fmt: skip

    @staticmethod
    def _source(row: tuple[Any, ...]) -> SourceRecord:
        sid, run_id, node, name, fmt, content_hash, size, status, lines, events, skipped, warnings, *prefix = row
        return SourceRecord(
            sid, run_id, node, name, fmt, content_hash, size, status, lines, events,
            skipped=json.loads(skipped) if skipped else {},
            warnings=json.loads(warnings) if warnings else [],
            start_offset=prefix[0], prefix_len=prefix[1], prefix_hash=prefix[2],
        )

    def find_source(self, run_id: int, content_hash: str) -> SourceRecord | None:
        rows = self.query(
            f"SELECT {self._SOURCE_COLS} FROM sources WHERE run_id = ? AND content_hash = ?",
            [run_id, content_hash],
        )
        return self._source(rows[0]) if rows else None

    def sources(self, run_id: int) -> list[SourceRecord]:
        rows = self.query(f"SELECT {self._SOURCE_COLS} FROM sources WHERE run_id = ? ORDER BY id", [run_id])
        return [self._source(r) for r in rows]

    def continuable_sources(self, run_id: int, fmt: str, size: int) -> list[SourceRecord]:
        rows = self.query(
            f"SELECT {self._SOURCE_COLS} FROM sources WHERE run_id = ? AND format = ? AND status = 'complete'"
            " AND prefix_hash IS NOT NULL AND prefix_len > 0 AND prefix_len <= ? ORDER BY prefix_len DESC, id DESC",
            [run_id, fmt, size],
        )
        return [self._source(r) for r in rows]

    def trim_source(self, source_id: int, from_seq: int) -> int:
        with self._lock:
            rows = self._write(
                "SELECT run_id, count(*) FROM events WHERE source = ? AND seq >= ? GROUP BY run_id",
                [source_id, from_seq],
            )
            if not rows:
                return 0
            run_id, n = rows[0]
            self._write(
                "DELETE FROM events WHERE run_id = ? AND source = ? AND seq >= ?", [run_id, source_id, from_seq]
            )
            # The removed events came from one line (the one cut when the source was read), counted in `lines`.
            self._write("UPDATE sources SET events = events - ?, lines = greatest(lines - 1, 0) WHERE id = ?",
                        [n, source_id])  # fmt: skip
            self._next_event_id.pop(run_id, None)
            return int(n)

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
    ) -> SourceRecord:
        """Register a source about to be ingested. A half-ingested earlier attempt is discarded."""
        with self._lock:
            stale = self.find_source(run_id, content_hash)
            if stale is not None:
                if stale.status == "complete":
                    raise StoreError(f"source {name!r} is already ingested in this run")
                self._write("DELETE FROM events WHERE run_id = ? AND source = ?", [run_id, stale.id])
                self._write("DELETE FROM sources WHERE id = ?", [stale.id])
                self._next_event_id.pop(run_id, None)
            (sid,) = self._con.execute("SELECT coalesce(max(id), 0) + 1 FROM sources").fetchall()[0]
            self._write(
                "INSERT INTO sources (id, run_id, node, name, format, content_hash, size, status, ingested_at,"
                " start_offset, prefix_len, prefix_hash) VALUES (?, ?, ?, ?, ?, ?, ?, 'ingesting', ?, ?, ?, ?)",
                [sid, run_id, node, name, fmt, content_hash, size, _now(), start_offset, prefix_len, prefix_hash],
            )
        return SourceRecord(sid, run_id, node, name, fmt, content_hash, size, "ingesting", 0, 0, {}, [],
                            start_offset, prefix_len, prefix_hash)  # fmt: skip

    def finish_source(
        self, source_id: int, *, lines: int, events: int, skipped: dict[str, int], warnings: list[str]
    ) -> None:
        self._write(
            "UPDATE sources SET status = 'complete', lines = ?, events = ?, skipped = ?, warnings = ? WHERE id = ?",
            [lines, events, json.dumps(skipped, sort_keys=True), json.dumps(warnings), source_id],
        )

    def discard_source(self, source_id: int) -> None:
        """Remove a source and every event it produced (a failed ingest leaves nothing behind)."""
        with self._lock:
            rows = self._con.execute("SELECT run_id FROM sources WHERE id = ?", [source_id]).fetchall()
            if not rows:
                return
            self._write("DELETE FROM events WHERE run_id = ? AND source = ?", [rows[0][0], source_id])
            self._write("DELETE FROM sources WHERE id = ?", [source_id])
            self._next_event_id.pop(rows[0][0], None)
