"""Run versus run: the same measurements on two runs, with deltas and a plain verdict per change.

Nodes are matched across runs by label (genesis name, moniker or p2p-id prefix), so compare runs of
the same testnet. Measurements, all medians in milliseconds (see ``docs/metrics.md``):

* per node: outbound vote propagation (its votes, signer timestamp → first receipt elsewhere),
  inbound vote propagation (others' votes reaching it), outbound one-hop delivery latency;
* per run: block interval (time between consecutive commits, median over nodes and heights) and
  rounds per height (mean of the highest round each height reached).

A change is *notable* when it moves by at least 20 % and 5 ms; verdicts are sorted by the size of
the change so the first one names what moved most.
"""

from __future__ import annotations

from typing import Any

from bftscope.store.base import Store

__all__ = ["compare_runs", "run_profile"]

NOTABLE_RATIO = 0.20
NOTABLE_MS = 5.0

_MEASURES = {
    "vote_out_ms": "median outbound vote latency",
    "vote_in_ms": "median inbound vote latency",
    "hop_out_ms": "median outbound one-hop latency",
    "block_interval_ms": "median block interval",
    "rounds_per_height": "mean rounds per height",
}


def run_profile(store: Store, run_id: int) -> dict[str, Any]:
    """Per-node and per-run measurements of one run."""
    q = store.dialect.quantile
    labels = {n.node: n.label for n in store.nodes(run_id)}
    nodes: dict[str, dict[str, float | None]] = {label: dict.fromkeys(list(_MEASURES)[:3]) for label in labels.values()}
    for node, value in store.query(
        f"SELECT signer, {q('latency_ns / 1e6', 0.5)} FROM vote_arrivals WHERE run_id = ? AND signer IS NOT NULL"
        " GROUP BY signer",
        [run_id],
    ):
        nodes[labels[node]]["vote_out_ms"] = value
    for node, value in store.query(
        f"SELECT receiver, {q('latency_ns / 1e6', 0.5)} FROM vote_arrivals WHERE run_id = ? GROUP BY receiver",
        [run_id],
    ):
        nodes[labels[node]]["vote_in_ms"] = value
    for node, value in store.query(
        f"SELECT sender, {q('latency_ns / 1e6', 0.5)} FROM deliveries WHERE run_id = ? AND recv_ts IS NOT NULL"
        " GROUP BY sender",
        [run_id],
    ):
        nodes[labels[node]]["hop_out_ms"] = value
    (interval,) = store.query(
        f"""
        WITH c AS (
            SELECT node, height, min(ts) AS ts FROM events
            WHERE run_id = ? AND kind IN ('block_committed', 'height_end') AND height > 0 GROUP BY node, height
        )
        SELECT {q("(ts - prev) / 1e6", 0.5)} FROM (
            SELECT ts, lag(ts) OVER (PARTITION BY node ORDER BY height) AS prev FROM c) WHERE prev IS NOT NULL
        """,
        [run_id],
    )[0]
    (rounds,) = store.query(
        "SELECT avg(r + 1) FROM (SELECT height, max(round) AS r FROM events WHERE run_id = ? AND kind = 'step'"
        " AND height > 0 GROUP BY height)",
        [run_id],
    )[0]
    return {"nodes": nodes, "run": {"block_interval_ms": interval, "rounds_per_height": rounds}}


def _change(subject: str, measure: str, a: float | None, b: float | None) -> dict[str, Any] | None:
    if a is None or b is None:
        return None
    delta = b - a
    ratio = delta / a if a else float("inf") if delta else 0.0
    unit = "" if measure == "rounds_per_height" else " ms"
    moved = "rose" if delta > 0 else "fell"
    who = f"{subject}'s " if subject != "run" else ""
    notable = abs(ratio) >= NOTABLE_RATIO and (unit == "" or abs(delta) >= NOTABLE_MS)
    verdict = f"{who}{_MEASURES[measure]} {moved} from {a:,.1f}{unit} to {b:,.1f}{unit}" if notable else ""
    return {"subject": subject, "measure": measure, "a": a, "b": b, "delta": delta, "ratio": ratio,
            "notable": notable, "verdict": verdict}  # fmt: skip


def compare_runs(store: Store, run_a: int, run_b: int) -> dict[str, Any]:
    """Every measurement of run A against run B; ``verdicts`` lists the notable changes, largest first."""
    pa_, pb = run_profile(store, run_a), run_profile(store, run_b)
    changes = []
    for measure in ("block_interval_ms", "rounds_per_height"):
        c = _change("run", measure, pa_["run"][measure], pb["run"][measure])
        if c:
            changes.append(c)
    for node in sorted(set(pa_["nodes"]) & set(pb["nodes"])):
        for measure in ("vote_out_ms", "vote_in_ms", "hop_out_ms"):
            c = _change(node, measure, pa_["nodes"][node][measure], pb["nodes"][node][measure])
            if c:
                changes.append(c)
    changes.sort(key=lambda c: -abs(c["ratio"]))
    return {
        "changes": changes,
        "verdicts": [c["verdict"] for c in changes if c["notable"]],
        "only_in_a": sorted(set(pa_["nodes"]) - set(pb["nodes"])),
        "only_in_b": sorted(set(pb["nodes"]) - set(pa_["nodes"])),
    }
