"""Rollups: every metric's whole-run answer, computed once after each ingest and stored as JSON.

A metric over a large run reads millions of deliveries and sorts them for exact percentiles; on a
12-million-event run that takes 0.1–2 s per metric. Operators mostly ask for the whole run (the API's
default window), so :func:`refresh` computes each whole-run answer right after the derived tables are
rebuilt and :func:`answer` serves it with one primary-key lookup. Answers for a narrower time window,
or for a run ingested before rollups existed, are computed live — the same function, so a rollup can
never disagree with a live answer (a test pins this).

The stored value is the JSON the API sends, so the HTTP layer can return it without re-encoding.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson

from bftscope.cometbft import analyzer, metrics, participation, peerids, timeline, topology
from bftscope.cometbft.analyzer import WHOLE_RUN, Window
from bftscope.store.base import Store
from bftscope.timeutil import format_ns

__all__ = ["ANALYZER_METRICS", "METRICS", "answer", "answer_json", "refresh"]

Metric = Callable[[Store, int, Window], Any]


def _whole(fn: Callable[[Store, int], Any]) -> Metric:
    """A metric without a time window (timeline, participation): always over the whole run."""
    return lambda store, run_id, window: fn(store, run_id)


def _thresholds(store: Store, run_id: int, window: Window) -> dict[str, float | None]:
    return analyzer.vote_thresholds(store, run_id, window)


def run_counts(store: Store, run_id: int) -> dict[str, Any]:
    """Events, time and height range of the run and of each node, and events by kind (camelCase, as served)."""
    per_node = {r[0]: r[1:] for r in store.query(
        "SELECT node, count(*), min(height), max(height) FROM events WHERE run_id = ? GROUP BY node",
        [run_id])}  # fmt: skip
    span = store.query("SELECT count(*), min(ts), max(ts), min(height), max(height) FROM events WHERE run_id = ?",
                       [run_id])[0]  # fmt: skip
    kinds = store.query("SELECT kind, count(*) FROM events WHERE run_id = ? GROUP BY kind ORDER BY 2 DESC, 1", [run_id])
    ids = peerids.identity_provenance(store, run_id)
    return {
        "events": int(span[0]), "firstTimestamp": format_ns(span[1]) if span[1] is not None else None,
        "lastTimestamp": format_ns(span[2]) if span[2] is not None else None, "firstHeight": span[3],
        "lastHeight": span[4], "eventsByKind": {k: int(v) for k, v in kinds},
        "nodes": [{"node": n.node, "label": n.label, "nodeId": n.p2p_id, "validatorAddress": n.validator,
                   "events": int(per_node.get(n.node, (0,))[0]), "firstHeight": per_node.get(n.node, (0, None))[1],
                   "lastHeight": per_node.get(n.node, (0, None, None))[2],
                   "nodeIdSources": ids.get(n.node, {}).get("sources", []),
                   "identityConflicts": ids.get(n.node, {}).get("conflicts", [])} for n in store.nodes(run_id)],
    }  # fmt: skip


# name → function(store, run_id, window). The names are the API's and the CLI's.
METRICS: dict[str, Metric] = {
    "vote_thresholds": _thresholds,
    "pairwise": analyzer.pairwise_latency,
    "vote_statistics": analyzer.vote_statistics,
    "timeseries": analyzer.latency_timeseries,
    "latency_stats": analyzer.latency_histogram_jitter,
    "success_rate": analyzer.success_rate,
    "end_to_end": analyzer.end_to_end,
    "network_pair_stats": analyzer.network_pair_stats,
    "network_node_stats": analyzer.network_node_stats,
    "network_overview": analyzer.network_overview,
    "vote_matrix": _whole(metrics.vote_matrix),
    "links": _whole(lambda s, r: metrics.link_latency(s, r, by_type=True)),
    "clock_skew": _whole(metrics.clock_skew),
    "clock_offsets": _whole(metrics.clock_offsets),
    "node_ranking": _whole(metrics.node_ranking),
    "participation": _whole(participation.participation),
    "proposers": _whole(participation.proposers),
    "heights": _whole(timeline.heights),
    "extra_rounds": _whole(timeline.round_explanations),
    "step_durations": _whole(timeline.step_durations),
    "run_counts": _whole(run_counts),
    "topology": _whole(topology.topology),
}


# The CometBFT Analyzer's metrics (and the vote thresholds behind its votes page): served in its shape, with
# milliseconds rounded to the microsecond (analyzer.round_ms) wherever they are serialized.
ANALYZER_METRICS = frozenset({
    "vote_thresholds", "pairwise", "vote_statistics", "timeseries", "latency_stats", "success_rate", "end_to_end",
    "network_pair_stats", "network_node_stats", "network_overview",
})  # fmt: skip


def _encode(name: str, value: Any) -> bytes:
    return orjson.dumps(analyzer.round_ms(value) if name in ANALYZER_METRICS else value)


def refresh(store: Store, run_id: int, *, threads: int = 2) -> int:
    """Recompute and store every rollup of the run; returns how many were stored.

    The metrics are read-only queries, computed on ``threads`` read cursors at once: most are small
    and leave the store's own threads idle part of the time (a small gain: 0.79–1.05 s with two or
    three against 0.90–1.14 s with one on the 1 GB benchmark run, on a noisy machine).
    """
    with ThreadPoolExecutor(max(1, threads)) as pool:
        values = list(pool.map(lambda kv: _encode(kv[0], kv[1](store, run_id, WHOLE_RUN)).decode(), METRICS.items()))
    store.execute("DELETE FROM rollups WHERE run_id = ?", [run_id])
    for name, value in zip(METRICS, values, strict=True):
        store.execute("INSERT INTO rollups VALUES (?, ?, ?)", [run_id, name, value])
    return len(METRICS)


def answer_json(store: Store, run_id: int, name: str, window: Window = WHOLE_RUN) -> bytes:
    """The metric's answer as JSON bytes: the stored rollup for the whole run, else computed live."""
    if window == WHOLE_RUN:
        rows = store.query("SELECT value FROM rollups WHERE run_id = ? AND name = ?", [run_id, name])
        if rows:
            return str(rows[0][0]).encode()
    return _encode(name, METRICS[name](store, run_id, window))


def answer(store: Store, run_id: int, name: str, window: Window = WHOLE_RUN) -> Any:
    """The metric's answer as Python data (see :func:`answer_json`)."""
    return orjson.loads(answer_json(store, run_id, name, window))
