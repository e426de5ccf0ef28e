"""The CometBFT Analyzer's three network-latency metrics (``/v1/simulations/:id/metrics/network/latency/…``):
per node pair, per node, and the overview, over every one-hop delivery whatever its message type.

Kept apart from :mod:`.analyzer` (the vote metrics, the window and the shared helpers, which this module
uses) because these work in NumPy on the raw latencies rather than in SQL; the deviations from the
original are listed with the others in ``docs/metrics.md#analyzer-compatible-metrics``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bftscope.families.cometbft.analytics.analyzer import WHOLE_RUN, Window, _d, _ids, _params
from bftscope.store.base import Store
from bftscope.timeutil import format_ns

__all__ = ["network_node_stats", "network_overview", "network_overview_empty", "network_pair_stats"]


# network_pair_stats works in NumPy on the raw latencies: in SQL the quantiles and the bucket counts (which need
# each group's quantiles first, so two join-backs) cost several times as much CPU. Each latency is kept as one
# int64, (latency_ns - smallest) * 2 + direction, so sorting them sorts by latency and carries the direction along.


def _pair_deliveries(store: Store, run_id: int, window: Window) -> tuple[list[str], dict[str, np.ndarray]]:
    """The received deliveries as NumPy columns, the message type as an index into the sorted type names (a CASE
    in SQL costs far less than fetching and encoding the strings)."""
    where = f"FROM deliveries WHERE run_id = :run AND recv_ts IS NOT NULL {window.clause('sent_ts')}"
    params = _params(run_id, window)
    types = [r[0] for r in store.query(f"SELECT DISTINCT msg_type {where} ORDER BY 1", params)]
    if not types:
        return [], {}
    case = "CASE msg_type " + " ".join(f"WHEN :t{i} THEN {i}" for i in range(len(types))) + " END"
    params |= {f"t{i}": t for i, t in enumerate(types)}
    table = store.query_arrow(f"SELECT sender, receiver, {case} AS t, latency_ns, sent_ts, recv_ts {where}", params)
    return types, {name: table.column(name).to_numpy() for name in table.column_names}


def _sort_segments(v: np.ndarray, offsets: np.ndarray, kind: Any = None) -> np.ndarray:
    """A copy of ``v`` with each segment ``offsets[i]:offsets[i + 1]`` sorted (a stable sort merges sorted runs)."""
    out = v.copy()
    for lo, hi in zip(offsets[:-1].tolist(), offsets[1:].tolist(), strict=True):
        out[lo:hi].sort(kind=kind)
    return out


def _lerp(lo: float, d: float, hi: float) -> float:
    """DuckDB's ``lo * (1 - d) + hi * d``, which its compiled code rounds as a fused multiply-add (the first
    product exact): computed on exact integers, then rounded once (int / int rounds correctly)."""
    (n1, d1), (n2, d2), (n3, d3) = lo.as_integer_ratio(), (1.0 - d).as_integer_ratio(), (hi * d).as_integer_ratio()
    den = max(d1 * d2, d3)  # all powers of two
    return (n1 * n2 * (den // (d1 * d2)) + n3 * (den // d3)) / den


def _quantile(ms: np.ndarray, offsets: np.ndarray, q: float) -> list[float]:
    """``quantile_cont`` of each sorted, non-empty segment, equal to DuckDB's to the last bit: between the values
    at ranks floor(rn) and ceil(rn), rn = (n - 1) * q (NumPy's percentile rounds differently)."""
    rn = (np.diff(offsets) - 1).astype(np.float64) * q
    frn = np.floor(rn)
    lo = ms[offsets[:-1] + frn.astype(np.int64)].tolist()
    hi = ms[offsets[:-1] + np.ceil(rn).astype(np.int64)].tolist()
    d = (rn - frn).tolist()
    return [x if f == 0.0 else _lerp(x, f, y) for x, f, y in zip(lo, d, hi, strict=True)]


def _direction_medians(v: np.ndarray, ms: np.ndarray, offsets: np.ndarray) -> list[list[float | None]]:
    """Per segment, the median of each direction's latencies (None without any); a subset of a sorted segment
    is still sorted."""
    out = []
    for bit in (0, 1):
        keep = (v & 1) == bit
        n = np.add.reduceat(keep, offsets[:-1], dtype=np.int64)
        some = n > 0
        med = iter(_quantile(ms[keep], np.concatenate(([0], np.cumsum(n[some]))), 0.5))
        out.append([next(med) if k else None for k in some.tolist()])
    return out


def _segment_stats(v: np.ndarray, offsets: np.ndarray, ns_min: int, sums: np.ndarray) -> list[list[Any]]:
    """For each sorted segment of ``v``: count, min, max, mean (from the segments' ``sums``), p50, p95, p99, the
    four bucket counts and the two direction medians (ms), as columns."""
    ms = ((v >> 1) + ns_min) / 1e6  # latency_ns / 1e6, as SQL divides
    starts, n = offsets[:-1], np.diff(offsets)
    p50, p95, p99 = (_quantile(ms, offsets, q) for q in (0.5, 0.95, 0.99))
    head = [c.tolist() for c in (n, ms[starts], ms[offsets[1:] - 1], sums / n)]
    return [*head, p50, p95, p99, *_buckets(ms, offsets, p50, p95, p99), *_direction_medians(v, ms, offsets)]


def _buckets(ms: np.ndarray, offsets: np.ndarray, *cuts: list[float]) -> list[list[int]]:
    """Per sorted segment, how many are < p50, in [p50, p95), in [p95, p99) and >= p99: counts below each cut by
    binary search; a bucket whose cuts are reversed (rounding, when they are one value apart) is empty, as in SQL."""
    below = [np.searchsorted(ms[lo:hi], cut).tolist()
             for lo, hi, *cut in zip(offsets[:-1].tolist(), offsets[1:].tolist(), *cuts, strict=True)]  # fmt: skip
    return [[c[0] for c in below], [max(c[1] - c[0], 0) for c in below], [max(c[2] - c[1], 0) for c in below],
            [hi - lo - c[2] for lo, hi, c in zip(offsets[:-1].tolist(), offsets[1:].tolist(), below, strict=True)]]


def _stat_rows(a: np.ndarray, b: np.ndarray, names: list[str], stats: list[list[Any]],
               first: np.ndarray, last: np.ndarray) -> list[tuple[Any, ...]]:  # fmt: skip
    """Rows (a, b, type, count, min, max, mean, p50, p95, p99, first, last, 4 buckets, a→b and b→a median)."""
    a_, b_, ab = a.tolist(), b.tolist(), stats[11]
    ba = [y if i != j else x for i, j, x, y in zip(a_, b_, ab, stats[12], strict=True)]  # a == b: both ways
    return list(zip(a_, b_, names, *stats[:7], first.tolist(), last.tolist(), *stats[7:11], ab, ba, strict=True))


def _pair_stats_rows(store: Store, run_id: int, window: Window) -> list[tuple[Any, ...]]:
    types, c = _pair_deliveries(store, run_id, window)
    if not types:
        return []
    a, b = np.minimum(c["sender"], c["receiver"]), np.maximum(c["sender"], c["receiver"])
    nodes, ntypes = int(b.max()) + 1, len(types)  # node numbers are small: 0, 1, … per run
    # Groups (pair, type) numbered densely in (a, b, type) order, so that a pair's groups are adjacent.
    code = (a.astype(np.int64) * nodes + b) * ntypes + c["t"]
    sizes = np.bincount(code)
    present = np.flatnonzero(sizes)
    dense = np.zeros(len(sizes), dtype=np.int64)
    dense[present] = np.arange(len(present))
    group = dense[code]
    order = np.argsort(group.astype(np.uint16) if len(present) <= 1 << 16 else group, kind="stable")  # a radix sort
    offsets = np.concatenate(([0], np.cumsum(sizes[present])))
    ns_min = int(c["latency_ns"].min())
    v = ((c["latency_ns"] - ns_min) << 1) | (c["sender"] != a)
    by_type = _sort_segments(v[order], offsets)
    first, last = np.full(len(present), np.iinfo(np.int64).max), np.full(len(present), np.iinfo(np.int64).min)
    np.minimum.at(first, group, c["sent_ts"])
    np.maximum.at(last, group, c["recv_ts"])
    # Sums for the means in the table's order, as SQL's avg adds them (on one thread: to the last bit).
    lat_ms = c["latency_ns"] / 1e6  # as SQL divides
    sums = np.bincount(group, weights=lat_ms)
    pair, name = present // ntypes, [types[t] for t in (present % ntypes).tolist()]
    stats = _segment_stats(by_type, offsets, ns_min, sums)
    rows = _stat_rows(pair // nodes, pair % nodes, name, stats, first, last)
    # "overall": a pair's segment is its types' sorted runs one after another, which a stable sort merges.
    opens = np.diff(pair, prepend=-1) != 0  # per group: the first of its pair
    starts = np.flatnonzero(opens)
    pair_offsets = np.concatenate((offsets[starts], offsets[-1:]))
    sums = np.bincount((np.cumsum(opens) - 1)[group], weights=lat_ms)
    stats = _segment_stats(_sort_segments(by_type, pair_offsets, kind="stable"), pair_offsets, ns_min, sums)
    pair = pair[starts]
    return rows + _stat_rows(pair // nodes, pair % nodes, ["overall"] * len(pair), stats,
                             np.minimum.reduceat(first, starts), np.maximum.reduceat(last, starts))  # fmt: skip


def network_pair_stats(store: Store, run_id: int, window: Window = WHOLE_RUN) -> list[dict[str, Any]]:
    """Per unordered node pair: one-hop latency statistics per message type and over all types (original
    §2.8, without the raw sample arrays the original shipped; ``latenciesMs`` is kept empty for shape).
    Both directions are pooled as in the original; each direction's median is added beside."""
    ids, vals = _ids(store, run_id)
    pairs: dict[tuple[str, str], dict[str, Any]] = {}
    for r in _pair_stats_rows(store, run_id, window):
        n1, n2 = sorted((ids[r[0]], ids[r[1]]))
        forward = ids[r[0]] == n1
        key = f"{n1}:{n2}"
        v1, v2 = (vals[r[0]], vals[r[1]]) if forward else (vals[r[1]], vals[r[0]])
        hist = {
            "nodePairKey": key, "node1Id": n1, "node2Id": n2, "messageType": r[2], "node1Validator": v1 or "",
            "node2Validator": v2 or "", "latenciesMs": [], "count": r[3], "minLatencyMs": r[4], "maxLatencyMs": r[5],
            "meanLatencyMs": r[6], "medianLatencyMs": r[7], "p95LatencyMs": r[8], "p99LatencyMs": r[9],
            "firstSeen": format_ns(r[10]), "lastSeen": format_ns(r[11]), "belowP50Count": r[12],
            "p50ToP95Count": r[13], "p95ToP99Count": r[14], "aboveP99Count": r[15],
            "node1ToNode2MedianMs": r[16] if forward else r[17], "node2ToNode1MedianMs": r[17] if forward else r[16],
        }  # fmt: skip
        pair = pairs.setdefault((n1, n2), {
            "nodePairKey": key, "node1Id": n1, "node2Id": n2, "node1Validator": v1 or "", "node2Validator": v2 or "",
            "messageTypes": {}, "overallStats": None,
        })  # fmt: skip
        if r[2] == "overall":
            pair["overallStats"] = hist
        else:
            pair["messageTypes"][r[2]] = hist
    out = [pairs[k] for k in sorted(pairs)]
    for p in out:
        p["messageTypes"] = dict(sorted(p["messageTypes"].items()))
    return out


def network_node_stats(store: Store, run_id: int, window: Window = WHOLE_RUN) -> list[dict[str, Any]]:
    """Per node: consensus messages it sent and received over the wire (or, for WAL runs, that it
    originated and that peers recorded), how many found no partner, and the peers it talked to (§2.9)."""
    ids, vals = _ids(store, run_id)
    d = _d(store)
    rows = store.query(
        f"""
        WITH d AS (SELECT * FROM deliveries WHERE run_id = :run {window.clause("sent_ts")}),
        s AS (SELECT sender AS node, count(*) AS sends, count(*) FILTER (WHERE recv_ts IS NULL) AS lost,
                     {d.list_agg("receiver", distinct=True)} AS peers FROM d GROUP BY sender),
        r AS (SELECT receiver AS node, count(*) AS receives, {d.list_agg("sender", distinct=True)} AS peers
              FROM d WHERE recv_ts IS NOT NULL GROUP BY receiver),
        u AS (SELECT receiver AS node, sum(count) AS unmatched FROM unmatched_receipts WHERE run_id = :run
              GROUP BY receiver)
        SELECT n.node, coalesce(s.sends, 0), coalesce(r.receives, 0), coalesce(s.lost, 0), coalesce(u.unmatched, 0),
               {d.list_union("s.peers", "r.peers")}
        FROM nodes n LEFT JOIN s USING (node) LEFT JOIN r USING (node) LEFT JOIN u USING (node)
        WHERE n.run_id = :run ORDER BY n.node
        """,
        _params(run_id, window),
    )
    out = []
    for node, sends, receives, lost, unmatched, peers in rows:
        connected = sorted(ids[p] for p in peers)
        out.append({"nodeId": ids[node], "validatorAddress": vals[node] or "", "totalSends": sends,
                    "totalReceives": receives + unmatched, "unmatchedSends": lost, "unmatchedReceives": unmatched,
                    "successfulMatches": sends - lost,
                    "matchSuccessRate": (sends - lost) / sends if sends else None,
                    "connectedPeers": connected, "peerCount": len(connected)})  # fmt: skip
    return out


def network_overview_empty() -> dict[str, Any]:
    """The overview of a run without deliveries."""
    return {
        "overallStats": {"count": 0, "p50ToP95Count": 0, "weightedAvgP95Ms": 0.0, "p50Ms": None, "p95Ms": None,
                         "p99Ms": None},
        "overallWeightedAvgP95LatencyMs": 0.0, "overallP95LatencyMs": 0.0,
        "messageTypeWithHighestAvgP95": {"messageType": "", "latencyMs": 0.0},
        "nodeWithHighestAvgP95": {"nodeId": "", "latencyMs": 0.0}, "messageTypeLatency": {},
        "nodeLatencyContribution": {},
    }  # fmt: skip


def network_overview(store: Store, run_id: int, window: Window = WHOLE_RUN) -> dict[str, Any]:
    """The message type and the node with the highest one-hop p95 latency, and a true p95 over every
    delivery (original §2.10 averaged p95s weighted by counts and called it a p95). A node's figure is
    the p95 over every delivery it sent or received. Ties go to the first name in sort order."""
    d = _d(store)
    ids, _ = _ids(store, run_id)
    params = _params(run_id, window)
    conf = "FROM deliveries WHERE run_id = :run AND recv_ts IS NOT NULL" + window.clause("sent_ts")
    x = "latency_ns / 1e6"
    overall = store.query(
        f"SELECT count(*), {d.quantile(x, 0.5)}, {d.quantile(x, 0.95)}, {d.quantile(x, 0.99)} {conf}", params
    )[0]
    n, p50, p95, p99 = overall
    between = store.query(
        f"SELECT count(*) {conf} AND {x} >= :p50 AND {x} < :p95", {**params, "p50": p50, "p95": p95}
    )[0][0] if n else 0  # fmt: skip
    by_type = {r[0]: r[1] for r in store.query(f"SELECT msg_type, {d.quantile(x, 0.95)} {conf} GROUP BY 1", params)}
    by_node = {
        ids[r[0]]: r[1]
        for r in store.query(
            f"SELECT node, {d.quantile(x, 0.95)} FROM (SELECT sender AS node, latency_ns {conf}"
            f" UNION ALL SELECT receiver, latency_ns {conf}) GROUP BY node",
            params,
        )
    }

    def top(values: dict[str, float], key: str) -> dict[str, Any]:
        if not values:
            return {key: "", "latencyMs": 0.0}
        name = min(values, key=lambda k: (-values[k], k))
        return {key: name, "latencyMs": values[name]}

    return {
        "overallStats": {"count": n, "p50ToP95Count": between, "weightedAvgP95Ms": p95 or 0.0,
                         "p50Ms": p50, "p95Ms": p95, "p99Ms": p99},
        "overallWeightedAvgP95LatencyMs": p95 or 0.0,
        "overallP95LatencyMs": p95 or 0.0,
        "messageTypeWithHighestAvgP95": top(by_type, "messageType"),
        "nodeWithHighestAvgP95": top(by_node, "nodeId"),
        "messageTypeLatency": dict(sorted(by_type.items())),
        "nodeLatencyContribution": dict(sorted(by_node.items())),
    }  # fmt: skip
