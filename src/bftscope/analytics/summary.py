"""A run's counts and its summary: nodes, time and height range, events by kind, sources and what they skipped.

:func:`run_counts` is the one place the three counting queries live (over the run, per node, per kind);
the summary (``bftscope summary``, printed after an ingest) and each family's counts rollup read it.
What a node is called and where its identity came from is the family's (``summary_node``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bftscope.families import registry
from bftscope.store.base import Store
from bftscope.timeutil import format_ns

__all__ = ["NodeCounts", "RunCounts", "run_counts", "run_summary"]


@dataclass(frozen=True)
class NodeCounts:
    events: int
    first_ts: int | None
    last_ts: int | None
    min_height: int | None
    max_height: int | None


@dataclass(frozen=True)
class RunCounts:
    events: int
    first_ts: int | None
    last_ts: int | None
    min_height: int | None
    max_height: int | None
    by_kind: dict[str, int] = field(default_factory=dict)  # most events first, then by kind
    per_node: dict[int, NodeCounts] = field(default_factory=dict)

    @property
    def first_timestamp(self) -> str | None:
        return format_ns(self.first_ts) if self.first_ts is not None else None

    @property
    def last_timestamp(self) -> str | None:
        return format_ns(self.last_ts) if self.last_ts is not None else None


def run_counts(store: Store, run_id: int) -> RunCounts:
    """Events, time and height range of the run and of each node, and events by kind."""
    per_node = {
        int(r[0]): NodeCounts(int(r[1]), r[2], r[3], r[4], r[5])
        for r in store.query(
            "SELECT node, count(*), min(ts), max(ts), min(height), max(height) FROM events WHERE run_id = ?"
            " GROUP BY node",
            [run_id],
        )
    }
    kinds = store.query(
        "SELECT kind, count(*) FROM events WHERE run_id = ? GROUP BY kind ORDER BY count(*) DESC, kind", [run_id]
    )
    (span,) = store.query(
        "SELECT count(*), min(ts), max(ts), min(height), max(height) FROM events WHERE run_id = ?", [run_id]
    )
    return RunCounts(int(span[0]), span[1], span[2], span[3], span[4], {str(k): int(c) for k, c in kinds}, per_node)


def run_summary(store: Store, run_name: str) -> dict[str, Any]:
    """What a client asks first: what is in this run, and what can it ask about it."""
    run = store.get_run(run_name)
    family = registry.family(run.chain)
    counts = run_counts(store, run.id)
    provenance = family.provenance(store, run.id)
    sources = store.sources(run.id)
    skipped: dict[str, int] = {}
    for s in sources:
        for reason, n in s.skipped.items():
            skipped[reason] = skipped.get(reason, 0) + n
    return {
        "run": run.name,
        "chain": run.chain,
        "events": counts.events,
        "time_range": {"from": counts.first_timestamp, "to": counts.last_timestamp},
        "height_range": {"min": counts.min_height, "max": counts.max_height},
        "nodes": [
            family.summary_node(n, counts.per_node.get(n.node), provenance.get(n.node, {})) for n in store.nodes(run.id)
        ],
        "events_by_kind": counts.by_kind,
        "sources": [
            {
                "name": s.name,
                "format": s.format,
                "node": s.node,
                "status": s.status,
                "lines": s.lines,
                "events": s.events,
                "skipped": s.skipped,
            }
            for s in sources
        ],
        "skipped": dict(sorted(skipped.items(), key=lambda kv: -kv[1])),
    }
