"""The eleven metrics of the CometBFT Analyzer API, computed correctly: here its vote metrics and what all share.

The system bftscope replaces (``shared/reference/cometbft-analyzer.md`` §2) promises these answers under
``/v1/simulations/:id/metrics/…``; four return nothing and the rest mix rounds, nodes and percentile
methods. Each function here returns the original's JSON shape (camelCase keys, milliseconds) so the
existing frontend keeps working, with the defects fixed — every deviation is listed in
``docs/metrics.md#analyzer-compatible-metrics``:

* the time window defaults to the whole run (the original: the last minute of wall-clock time);
* every percentile is exact with linear interpolation, never a t-digest and never a mean of p95s;
* latencies are one hop (a message sent by A and received by B, :mod:`.derive`),
  signed, on the two nodes' clocks; the clock-skew metric says how far apart those clocks are;
* empty results are ``[]``, never ``null``; ties are broken by name, never by map order.

The three network-latency metrics (``/network/latency/…``) are in :mod:`.network_latency`.

Node ids in the output are p2p node ids (what the original and its frontend use); a node without
one is shown by its label.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from bftscope.store.base import Store
from bftscope.store.dialect import Dialect
from bftscope.timeutil import format_ns

__all__ = [
    "THRESHOLDS",
    "Window",
    "end_to_end",
    "latency_histogram_jitter",
    "latency_timeseries",
    "pairwise_latency",
    "round_ms",
    "success_rate",
    "vote_latencies",
    "vote_statistics",
    "vote_thresholds",
]

THRESHOLDS = {"p50": 0.5, "p95": 0.95, "p99": 0.99}

# Keys whose values are milliseconds besides the "…Ms" ones: the latency rows of vote statistics, the
# histogram bounds, and the overview's per-type and per-node maps (every float inside them).
_MS_KEYS = frozenset({"p50", "p90", "p95", "p99", "max", "lower", "upper", "messageTypeLatency",
                      "nodeLatencyContribution"})  # fmt: skip


def round_ms(value: Any, ms: bool = False) -> Any:
    """``value`` with every millisecond float rounded to the microsecond (``218.077``, not ``218.07660733000006``).

    The functions here compute at full precision (tests compare them with NumPy); this is applied once,
    where an answer is serialized for the API (:mod:`.rollups`, the votes page). Digits
    below a microsecond are noise from the float division of nanoseconds, not measurement.
    """
    if isinstance(value, float):
        return round(value, 3) if ms else value
    if isinstance(value, dict):
        return {k: round_ms(v, ms or k.endswith("Ms") or k in _MS_KEYS) for k, v in value.items()}
    if isinstance(value, list):
        return [round_ms(v, ms) for v in value]
    return value


@dataclass(frozen=True)
class Window:
    """A time window on the send time (ns since the epoch, both ends inclusive); None = open."""

    from_ns: int | None = None
    to_ns: int | None = None

    def clause(self, column: str) -> str:
        parts = []
        if self.from_ns is not None:
            parts.append(f" AND {column} >= :from_ns")
        if self.to_ns is not None:
            parts.append(f" AND {column} <= :to_ns")
        return "".join(parts)

    def params(self) -> dict[str, int]:
        out = {}
        if self.from_ns is not None:
            out["from_ns"] = self.from_ns
        if self.to_ns is not None:
            out["to_ns"] = self.to_ns
        return out


WHOLE_RUN = Window()


def _d(store: Store) -> Dialect:
    return store.dialect


def _ids(store: Store, run_id: int) -> tuple[dict[int, str], dict[int, str | None]]:
    nodes = store.nodes(run_id)
    return {n.node: n.p2p_id or n.label for n in nodes}, {n.node: n.validator for n in nodes}


def _confirmed_votes(window: Window) -> str:
    return ("SELECT * FROM deliveries WHERE run_id = :run AND msg_type = 'vote' AND recv_ts IS NOT NULL"
            + window.clause("sent_ts"))  # fmt: skip


def _params(run_id: int, window: Window, **more: Any) -> dict[str, Any]:
    return {"run": run_id, **window.params(), **more}


def vote_thresholds(store: Store, run_id: int, window: Window = WHOLE_RUN) -> dict[str, float | None]:
    """The p50/p95/p99 of vote delivery latency (ns), the thresholds :func:`vote_latencies` filters by."""
    d = _d(store)
    qs = ", ".join(d.quantile("latency_ns", q) for q in THRESHOLDS.values())
    row = store.query(
        f"SELECT {qs} FROM ({_confirmed_votes(window)})",
        _params(run_id, window),
    )[0]
    return dict(zip(THRESHOLDS, row, strict=True))


def vote_latencies(
    store: Store, run_id: int, window: Window = WHOLE_RUN, *, page: int = 1, per_page: int = 100,
    threshold: str = "p95", threshold_ns: float | None = None,
) -> dict[str, Any]:
    """Vote deliveries whose latency is at or above the run's ``threshold`` percentile, oldest first, paged
    (original §2.1). Rows are ordered by send time, then sender, receiver and vote, so pages are stable.
    ``threshold_ns`` short-cuts the percentile when the caller has it (from the rollups)."""
    ids, _ = _ids(store, run_id)
    if threshold_ns is None:
        threshold_ns = vote_thresholds(store, run_id, window).get(threshold if threshold in THRESHOLDS else "p95")
    base = f"WITH v AS ({_confirmed_votes(window)}), t AS (SELECT CAST(:th AS DOUBLE) AS th)"
    params = _params(run_id, window, th=threshold_ns)
    rows = store.query(
        f"""{base}
        SELECT height, round, vote_type, validator_index, sender, receiver, sent_ts, recv_ts, latency_ns,
               count(*) OVER () AS total
        FROM v, t WHERE v.latency_ns >= t.th
        ORDER BY sent_ts, sender, receiver, height, round, vote_type, validator_index
        LIMIT :limit OFFSET :offset
        """,
        {**params, "limit": per_page, "offset": (page - 1) * per_page},
    )
    # one scan gives the page and the total; only a page past the end needs a separate count
    total = int(rows[0][9]) if rows else int(
        store.query(f"{base} SELECT count(*) FROM v, t WHERE v.latency_ns >= t.th", params)[0][0])  # fmt: skip
    data = [
        {"height": r[0], "round": r[1], "type": r[2], "validatorIndex": r[3], "sender": ids[r[4]],
         "receiver": ids[r[5]], "sentTime": format_ns(r[6]), "receivedTime": format_ns(r[7]), "latencyMs": r[8] / 1e6}
        for r in rows
    ]  # fmt: skip
    return {
        "data": data,
        "pagination": {"page": page, "perPage": per_page, "total": total,
                       "totalPages": math.ceil(total / per_page) if total else 0},
    }  # fmt: skip


def pairwise_latency(store: Store, run_id: int, window: Window = WHOLE_RUN) -> list[dict[str, Any]]:
    """p50/p95/p99 of vote delivery latency per directed pair (original §2.2)."""
    d = _d(store)
    ids, _ = _ids(store, run_id)
    qs = ", ".join(d.quantile("latency_ns / 1e6", q) for q in (0.5, 0.95, 0.99))
    rows = store.query(
        f"SELECT sender, receiver, {qs}, count(*) FROM ({_confirmed_votes(window)}) GROUP BY sender, receiver",
        _params(run_id, window),
    )
    out = [{"sender": ids[r[0]], "receiver": ids[r[1]], "p50Ms": r[2], "p95Ms": r[3], "p99Ms": r[4], "count": r[5]}
           for r in rows]  # fmt: skip
    return sorted(out, key=lambda x: (x["sender"], x["receiver"]))


def vote_statistics(store: Store, run_id: int, window: Window = WHOLE_RUN) -> list[dict[str, Any]]:
    """Per (sender, receiver, vote type): count, p50/p90/p95/p99, max, and the share of spikes — deliveries
    at least twice that group's p95 (original §2.3)."""
    d = _d(store)
    ids, _ = _ids(store, run_id)
    qs = ", ".join(f"{d.quantile('latency_ns', q)} AS p{round(q * 100)}" for q in (0.5, 0.9, 0.95, 0.99))
    rows = store.query(
        f"""
        WITH v AS ({_confirmed_votes(window)}),
        g AS (SELECT sender, receiver, vote_type, count(*) AS n, {qs}, max(latency_ns) AS mx FROM v
              GROUP BY sender, receiver, vote_type)
        SELECT g.sender, g.receiver, g.vote_type, g.n, g.p50, g.p90, g.p95, g.p99, g.mx,
               (SELECT count(*) FROM v WHERE v.sender = g.sender AND v.receiver = g.receiver
                  AND v.vote_type = g.vote_type AND v.latency_ns >= 2 * g.p95) AS spikes
        FROM g
        """,
        _params(run_id, window),
    )
    out = [
        {"sender": ids[r[0]], "receiver": ids[r[1]], "voteType": r[2], "count": r[3], "p50": r[4] / 1e6,
         "p90": r[5] / 1e6, "p95": r[6] / 1e6, "p99": r[7] / 1e6, "max": r[8] / 1e6, "spikePerc": 100.0 * r[9] / r[3]}
        for r in rows
    ]  # fmt: skip
    return sorted(out, key=lambda x: (x["sender"], x["receiver"], x["voteType"]))


def latency_timeseries(store: Store, run_id: int, window: Window = WHOLE_RUN) -> list[dict[str, Any]]:
    """Per height and directed pair: the median vote delivery latency and how many votes it covers
    (original §2.4, which meant one row per vote; one row per height and pair keeps the answer bounded)."""
    d = _d(store)
    ids, _ = _ids(store, run_id)
    rows = store.query(
        f"""SELECT height, sender, receiver, {d.quantile("latency_ns / 1e6", 0.5)}, max(latency_ns) / 1e6, count(*)
        FROM ({_confirmed_votes(window)}) GROUP BY height, sender, receiver""",
        _params(run_id, window),
    )
    out = [{"height": r[0], "sender": ids[r[1]], "receiver": ids[r[2]], "latencyMs": r[3], "maxMs": r[4],
            "count": r[5]} for r in rows]  # fmt: skip
    return sorted(out, key=lambda x: (x["height"], x["sender"], x["receiver"]))


def latency_histogram_jitter(
    store: Store, run_id: int, window: Window = WHOLE_RUN, *, buckets: int = 10
) -> dict[str, list[dict[str, Any]]]:
    """A histogram of vote delivery latency (``buckets`` equal-width buckets from the smallest to the
    largest value; the last bucket includes its upper edge) and the jitter of each directed pair — the
    sample standard deviation, n − 1 (original §2.5)."""
    ids, _ = _ids(store, run_id)
    d = _d(store)
    params = _params(run_id, window, buckets=buckets)
    hist = store.query(
        f"""
        WITH v AS ({_confirmed_votes(window)}),
        b AS (SELECT min(latency_ns) AS lo, max(latency_ns) AS hi FROM v)
        SELECT least(CAST(floor((v.latency_ns - b.lo) * :buckets / greatest(b.hi - b.lo, 1)) AS INTEGER),
                     :buckets - 1) AS i, count(*), {d.any_value("b.lo")}, {d.any_value("b.hi")}
        FROM v, b GROUP BY i ORDER BY i
        """,
        params,
    )
    histogram: list[dict[str, Any]] = []
    if hist:
        lo, hi = hist[0][2], hist[0][3]
        width = max(hi - lo, 1) / buckets
        counts = {r[0]: r[1] for r in hist}
        histogram = [{"lower": (lo + i * width) / 1e6, "upper": (lo + (i + 1) * width) / 1e6,
                      "count": counts.get(i, 0)} for i in range(buckets)]  # fmt: skip
    jitter = store.query(
        f"""SELECT sender, receiver, stddev_samp(latency_ns / 1e6), count(*)
        FROM ({_confirmed_votes(window)}) GROUP BY sender, receiver""",
        _params(run_id, window),
    )
    pairs = [{"sender": ids[r[0]], "receiver": ids[r[1]], "stdDevMs": r[2], "count": r[3]} for r in jitter]
    return {"histogram": histogram, "jitter": sorted(pairs, key=lambda x: (x["sender"], x["receiver"]))}


def success_rate(store: Store, run_id: int, window: Window = WHOLE_RUN) -> list[dict[str, Any]]:
    """Per height and directed pair: votes sent, votes received, and the share received (original §2.6).
    A send never matched by a receipt counts as lost."""
    ids, _ = _ids(store, run_id)
    rows = store.query(
        "SELECT height, sender, receiver, count(*), count(recv_ts) FROM deliveries"
        " WHERE run_id = :run AND msg_type = 'vote'" + window.clause("sent_ts") + " GROUP BY height, sender, receiver",
        _params(run_id, window),
    )
    out = [{"height": r[0], "sender": ids[r[1]], "receiver": ids[r[2]], "sentCount": r[3], "recvCount": r[4],
            "successRate": r[4] / r[3] if r[3] else 0.0} for r in rows]  # fmt: skip
    return sorted(out, key=lambda x: (x["height"], x["sender"], x["receiver"]))


def end_to_end(store: Store, run_id: int, window: Window = WHOLE_RUN) -> list[dict[str, Any]]:
    """Per height: at each node, the time from the start of the round in which the node got the complete
    proposal block to that moment (one clock), then p50/p95 across nodes (original §2.7, which paired
    every node's round start with every node's block). The block is complete at ``block_complete``
    (logs) or, for WAL runs, when the last of the round's block parts arrived. WALs do not record entering
    a new round, so there the round starts at its propose step (CometBFT enters it at once)."""
    d = _d(store)
    rows = store.query(
        f"""
        WITH parts AS (
            SELECT node, height, round, part_index, min(ts) AS ts FROM events
            WHERE run_id = :run AND msg_type = 'block_part' AND kind IN ('msg_received', 'msg_internal')
            GROUP BY node, height, round, part_index
        ), by_parts AS (
            SELECT node, height, {d.arg_max("ts", "round")} AS ts FROM (
                SELECT node, height, round, max(ts) AS ts FROM parts GROUP BY node, height, round)
            GROUP BY node, height
        ), logged AS (
            SELECT node, height, min(ts) AS ts FROM events WHERE run_id = :run AND kind = 'block_complete'
            GROUP BY node, height
        ), complete AS (
            SELECT node, height, coalesce(l.ts, p.ts) AS ts
            FROM by_parts p FULL OUTER JOIN logged l USING (node, height)
        ), starts AS (
            SELECT node, height, ts FROM events WHERE run_id = :run AND kind = 'step' AND (step = 'new_round'
                OR step = 'propose' AND node NOT IN (SELECT node FROM events WHERE run_id = :run AND kind = 'step'
                                                      AND step = 'new_round'))
        ), e2e AS (
            SELECT c.node, c.height, c.ts - s.ts AS ns
            FROM complete c {d.asof_join("starts s", "c.node = s.node AND c.height = s.height AND c.ts >= s.ts")}
            WHERE true {window.clause("c.ts")}
        )
        SELECT height, {d.quantile("ns / 1e6", 0.5)}, {d.quantile("ns / 1e6", 0.95)}, count(*), max(ns) / 1e6
        FROM e2e GROUP BY height ORDER BY height
        """,
        _params(run_id, window),
    )
    return [{"height": r[0], "p50Ms": r[1], "p95Ms": r[2], "nodes": r[3], "maxMs": r[4]} for r in rows]

