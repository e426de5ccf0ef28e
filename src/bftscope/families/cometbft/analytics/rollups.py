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
from typing import Any

import orjson

from bftscope.analytics import rollups as engine
from bftscope.analytics import summary
from bftscope.families.cometbft.analytics import (
    analyzer,
    answers,
    clock,
    network_latency,
    participation,
    peerids,
    timeline,
    topology,
)
from bftscope.families.cometbft.analytics.analyzer import WHOLE_RUN, Window
from bftscope.store.base import NodeRecord, Store

__all__ = ["ANALYZER_METRICS", "METRICS", "answer", "answer_json", "refresh"]

Metric = Callable[[Store, int, Window], Any]


def _whole(fn: Callable[[Store, int], Any]) -> Metric:
    """A metric without a time window (timeline, participation): always over the whole run."""
    return lambda store, run_id, window: fn(store, run_id)


def _thresholds(store: Store, run_id: int, window: Window) -> dict[str, float | None]:
    return analyzer.vote_thresholds(store, run_id, window)


def run_counts(store: Store, run_id: int) -> dict[str, Any]:
    """Events, time and height range of the run and of each node, and events by kind (camelCase, as served)."""
    counts = summary.run_counts(store, run_id)
    ids = peerids.identity_provenance(store, run_id)

    def node(n: NodeRecord) -> dict[str, Any]:
        c = counts.per_node.get(n.node)
        return {
            "node": n.node, "label": n.label, "nodeId": n.p2p_id, "validatorAddress": n.validator,
            "events": c.events if c else 0, "firstHeight": c.min_height if c else None,
            "lastHeight": c.max_height if c else None, "nodeIdSources": ids.get(n.node, {}).get("sources", []),
            "identityConflicts": ids.get(n.node, {}).get("conflicts", []),
        }  # fmt: skip

    return {
        "events": counts.events, "firstTimestamp": counts.first_timestamp, "lastTimestamp": counts.last_timestamp,
        "firstHeight": counts.min_height, "lastHeight": counts.max_height, "eventsByKind": counts.by_kind,
        "nodes": [node(n) for n in store.nodes(run_id)],
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
    "network_pair_stats": network_latency.network_pair_stats,
    "network_node_stats": network_latency.network_node_stats,
    "network_overview": network_latency.network_overview,
    "vote_matrix": _whole(answers.vote_matrix),
    "links": _whole(lambda s, r: answers.link_latency(s, r, by_type=True)),
    "clock_skew": _whole(answers.clock_skew),
    "clock_offsets": _whole(answers.clock_offsets),
    "node_ranking": _whole(answers.node_ranking),
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
    """Recompute and store every rollup of the run (:func:`bftscope.analytics.rollups.refresh`); the clock
    estimate that three of them rest on is computed once."""
    with clock.estimate_once(store, run_id):
        return engine.refresh(store, run_id, METRICS, _encode, WHOLE_RUN, threads=threads)


def answer_json(store: Store, run_id: int, name: str, window: Window = WHOLE_RUN) -> bytes:
    """The metric's answer as JSON bytes: the stored rollup for the whole run, else computed live."""
    return engine.answer_json(store, run_id, name, METRICS[name], _encode, window, whole=window == WHOLE_RUN)


def answer(store: Store, run_id: int, name: str, window: Window = WHOLE_RUN) -> Any:
    """The metric's answer as Python data (see :func:`answer_json`)."""
    return orjson.loads(answer_json(store, run_id, name, window))
