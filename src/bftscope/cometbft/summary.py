"""A run at a glance: nodes, time and height range, events by kind, sources and what they skipped.

This is what a client asks first ("what is in this run, and what can I ask about it?"); the CLI
prints it after an ingest and the API serves it.
"""

from __future__ import annotations

from typing import Any

from bftscope.cometbft.peerids import identity_provenance
from bftscope.store.base import Store
from bftscope.timeutil import format_ns

__all__ = ["run_summary"]


def run_summary(store: Store, run_name: str) -> dict[str, Any]:
    run = store.get_run(run_name)
    rid = run.id
    nodes = store.nodes(rid)
    per_node = {
        r[0]: r[1:]
        for r in store.query(
            "SELECT node, count(*), min(ts), max(ts), min(height), max(height) FROM events WHERE run_id = ?"
            " GROUP BY node",
            [rid],
        )
    }
    kinds = store.query(
        "SELECT kind, count(*) FROM events WHERE run_id = ? GROUP BY kind ORDER BY count(*) DESC, kind", [rid]
    )
    (span,) = store.query(
        "SELECT count(*), min(ts), max(ts), min(height), max(height) FROM events WHERE run_id = ?", [rid]
    )
    provenance = identity_provenance(store, rid)
    sources = store.sources(rid)
    skipped: dict[str, int] = {}
    for s in sources:
        for reason, n in s.skipped.items():
            skipped[reason] = skipped.get(reason, 0) + n
    return {
        "run": run.name,
        "chain": run.chain,
        "events": int(span[0]),
        "time_range": {
            "from": format_ns(span[1]) if span[1] is not None else None,
            "to": format_ns(span[2]) if span[2] is not None else None,
        },
        "height_range": {"min": span[3], "max": span[4]},
        "nodes": [
            {
                "node": n.node,
                "label": n.label,
                "p2p_id": n.p2p_id,
                # where the p2p id came from, and disagreements between sources (cometbft/peerids.py)
                "p2p_id_sources": provenance.get(n.node, {}).get("sources", []),
                "identity_conflicts": provenance.get(n.node, {}).get("conflicts", []),
                "validator": n.validator,
                "moniker": n.moniker,
                "events": int(per_node[n.node][0]) if n.node in per_node else 0,
                "height_range": (
                    {"min": per_node[n.node][3], "max": per_node[n.node][4]} if n.node in per_node else None
                ),
            }
            for n in nodes
        ],
        "events_by_kind": {k: int(c) for k, c in kinds},
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
