"""Listing events with filters and a stable keyset cursor.

Events are ordered by ``(ts, id)``; a page continues strictly after the last ``(ts, id)`` it
returned, so paging never repeats or skips an event, however many share a timestamp. Every
filter value is a bound parameter: nothing from a caller is spliced into SQL text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bftscope.model import ROW_COLUMNS
from bftscope.store.base import Store

__all__ = ["DELIVERY", "EVENT_COLUMNS", "EventFilter", "count_all_events", "count_matching", "event_span",
           "list_events"]

EVENT_COLUMNS: tuple[str, ...] = ("id", "node", *ROW_COLUMNS)

# The kind of the confirmed exchanges (rows of ``deliveries``) that event pages interleave with the events,
# on the receiver at the receive time (api/eventpage.py). Not a column value of ``events``.
DELIVERY = "delivery"


@dataclass
class EventFilter:
    nodes: list[int] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)
    min_height: int | None = None
    max_height: int | None = None
    from_ns: int | None = None
    to_ns: int | None = None

    def where(self, run_id: int) -> tuple[str, list[Any]]:
        clauses = ["run_id = ?"]
        params: list[Any] = [run_id]
        if self.nodes:
            clauses.append(f"node IN ({', '.join('?' for _ in self.nodes)})")
            params.extend(self.nodes)
        if self.kinds:
            clauses.append(f"kind IN ({', '.join('?' for _ in self.kinds)})")
            params.extend(self.kinds)
        if self.min_height is not None:
            clauses.append("height >= ?")
            params.append(self.min_height)
        if self.max_height is not None:
            clauses.append("height <= ?")
            params.append(self.max_height)
        if self.from_ns is not None:
            clauses.append("ts >= ?")
            params.append(self.from_ns)
        if self.to_ns is not None:
            clauses.append("ts <= ?")
            params.append(self.to_ns)
        return " AND ".join(clauses), params

    @property
    def wants_events(self) -> bool:
        return not self.kinds or any(k != DELIVERY for k in self.kinds)

    @property
    def wants_deliveries(self) -> bool:
        return not self.kinds or DELIVERY in self.kinds

    def delivery_where(self, run_id: int) -> tuple[str, list[Any]]:
        """The filter on ``deliveries d`` (received only): a delivery belongs to its receiver, at the receive time."""
        clauses = ["d.run_id = ?", "d.recv_ts IS NOT NULL"]
        params: list[Any] = [run_id]
        if self.nodes:
            clauses.append(f"d.receiver IN ({', '.join('?' for _ in self.nodes)})")
            params.extend(self.nodes)
        for clause, value in (("d.height >= ?", self.min_height), ("d.height <= ?", self.max_height),
                              ("d.recv_ts >= ?", self.from_ns), ("d.recv_ts <= ?", self.to_ns)):  # fmt: skip
            if value is not None:
                clauses.append(clause)
                params.append(value)
        return " AND ".join(clauses), params


def count_all_events(store: Store) -> int:
    """Events held by the store, of every run."""
    return int(store.query("SELECT count(*) FROM events")[0][0])


def event_span(store: Store, run_id: int) -> tuple[int, int, int]:
    """``(events, first ts, last ts)`` of a run (zeros when it has none)."""
    n, lo, hi = store.query("SELECT count(*), min(ts), max(ts) FROM events WHERE run_id = ?", [run_id])[0]
    return int(n or 0), int(lo or 0), int(hi or 0)


def count_matching(store: Store, run_id: int, flt: EventFilter) -> int:
    """How many entries ``flt`` selects in the run: its events, plus its deliveries where it wants them."""
    total = 0
    if flt.wants_events:
        where, params = flt.where(run_id)
        total += int(store.query(f"SELECT count(*) FROM events WHERE {where}", params)[0][0])
    if flt.wants_deliveries:  # every received delivery has its receive event (derive.py), so no join
        where, params = flt.delivery_where(run_id)
        total += int(store.query(f"SELECT count(*) FROM deliveries d WHERE {where}", params)[0][0])
    return total


def list_events(
    store: Store,
    run_id: int,
    flt: EventFilter,
    *,
    limit: int = 100,
    after: tuple[int, int] | None = None,
    before: tuple[int, int] | None = None,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """Up to ``limit`` events in ``(ts, id)`` order, strictly after ``after`` or just before ``before``,
    skipping ``offset`` events first (counted from the cursor, away from it for ``before``)."""
    where, params = flt.where(run_id)
    cols = ", ".join(EVENT_COLUMNS)
    if before is not None:
        sql = (
            f"SELECT {cols} FROM (SELECT {cols} FROM events WHERE {where} AND (ts < ? OR (ts = ? AND id < ?))"
            " ORDER BY ts DESC, id DESC LIMIT ? OFFSET ?) ORDER BY ts, id"
        )
        params += [before[0], before[0], before[1], limit, offset]
    elif after is not None:
        sql = f"SELECT {cols} FROM events WHERE {where} AND (ts > ? OR (ts = ? AND id > ?))"
        sql += " ORDER BY ts, id LIMIT ? OFFSET ?"
        params += [after[0], after[0], after[1], limit, offset]
    else:
        sql = f"SELECT {cols} FROM events WHERE {where} ORDER BY ts, id LIMIT ? OFFSET ?"
        params += [limit, offset]
    return [dict(zip(EVENT_COLUMNS, row, strict=True)) for row in store.query(sql, params)]
