"""Consensus metrics of a CometBFT run, computed from the derived tables (see ``docs/metrics.md``).

Every latency is in milliseconds; every percentile is exact with linear interpolation (NumPy's
default method), through :mod:`bftscope.store.dialect`. Each function takes the run's id and returns
plain rows (dicts) with node labels resolved, ready for a table, JSON or a plot.
"""

from __future__ import annotations

from typing import Any

from bftscope.families.cometbft.analytics import clock
from bftscope.store.base import Store
from bftscope.store.dialect import Dialect

__all__ = ["clock_offsets", "clock_skew", "link_latency", "node_ranking", "vote_matrix"]


def _dialect(store: Store) -> Dialect:
    return store.dialect


def _labels(store: Store, run_id: int) -> dict[int, str]:
    return {n.node: n.label for n in store.nodes(run_id)}


def _pcts(d: Dialect, expr: str) -> str:
    return ", ".join(d.quantile(expr, q) for q in (0.5, 0.95, 0.99))


def vote_matrix(store: Store, run_id: int) -> list[dict[str, Any]]:
    """Vote propagation signer → receiver: first receipt of each distinct vote minus the vote's own
    timestamp (two clocks), own votes excluded. One row per (signer, receiver)."""
    d = _dialect(store)
    labels = _labels(store, run_id)
    rows = store.query(
        f"""
        SELECT signer, validator, receiver, count(*) AS n, {_pcts(d, "latency_ns / 1e6")},
               min(latency_ns) / 1e6, max(latency_ns) / 1e6, avg(latency_ns) / 1e6
        FROM vote_arrivals WHERE run_id = ? AND latency_ns IS NOT NULL
        GROUP BY signer, validator, receiver ORDER BY validator, receiver
        """,
        [run_id],
    )
    return [
        {"signer": labels.get(r[0], r[1]), "signer_validator": r[1], "receiver": labels[r[2]], "count": r[3],
         "p50_ms": r[4], "p95_ms": r[5], "p99_ms": r[6], "min_ms": r[7], "max_ms": r[8], "mean_ms": r[9]}
        for r in rows
    ]  # fmt: skip


def link_latency(store: Store, run_id: int, *, by_type: bool = True) -> list[dict[str, Any]]:
    """One-hop delivery latency per directed link (and message type): receive time on the receiver's
    clock minus send time on the sender's clock, with sent/received counts and the delivery rate; and the
    same corrected for clock skew: minus the receiver's clock lead over the sender where it is
    determinable (:func:`clock_skew`), and as an interval from the lead's interval in every case."""
    d = _dialect(store)
    labels = _labels(store, run_id)
    group = "sender, receiver, msg_type" if by_type else "sender, receiver"
    rows = store.query(
        f"""
        SELECT {group}, count(*) AS sent, count(recv_ts) AS received, {_pcts(d, "latency_ns / 1e6")},
               max(latency_ns) / 1e6, {d.any_value("matched_by")}
        FROM deliveries WHERE run_id = ?
        GROUP BY {group} ORDER BY {group}
        """,
        [run_id],
    )
    # skew-corrected latency: minus the receiver's clock lead over the sender, where it is determinable
    # (clock.py); the interval follows the lead's interval either way
    lead: dict[tuple[str, str], tuple[float | None, list[float], str]] = {}
    for sk in clock.pair_offsets(store, run_id):
        lo, hi = sk["interval_ms"]
        ahead = sk["b_ahead_of_a_ms"]
        lead[(sk["a"], sk["b"])] = (ahead, [lo, hi], sk["status"])
        lead[(sk["b"], sk["a"])] = (None if ahead is None else -ahead, [-hi, -lo], sk["status"])
    out = []
    for r in rows:
        k = 3 if by_type else 2
        row: dict[str, Any] = {"sender": labels[r[0]], "receiver": labels[r[1]]}
        if by_type:
            row["msg_type"] = r[2]
        sent, received = r[k], r[k + 1]
        skew, (lo, hi), status = lead.get((row["sender"], row["receiver"]), (None, [None, None], None))
        row.update({"sent": sent, "received": received, "delivery_rate": received / sent if sent else None,
                    "p50_ms": r[k + 2], "p95_ms": r[k + 3], "p99_ms": r[k + 4], "max_ms": r[k + 5],
                    "matched_by": r[k + 6], "receiver_clock_lead_ms": skew, "clock_status": status,
                    "receiver_clock_lead_interval_ms": None if lo is None else [lo, hi],
                    "corrected_p50_ms": None if skew is None or r[k + 2] is None else r[k + 2] - skew,
                    "corrected_p95_ms": None if skew is None or r[k + 3] is None else r[k + 3] - skew,
                    "corrected_p50_interval_ms": _shifted(r[k + 2], lo, hi),
                    "corrected_p95_interval_ms": _shifted(r[k + 3], lo, hi)})  # fmt: skip
        out.append(row)
    return out


def _shifted(value: float | None, lo: float | None, hi: float | None) -> list[float] | None:
    """``value − lead`` for every lead in [lo, hi]."""
    if value is None or lo is None or hi is None:
        return None
    return [value - hi, value - lo]


def clock_skew(store: Store, run_id: int) -> list[dict[str, Any]]:
    """Per node pair with deliveries both ways: b's clock lead over a's, estimated from minimum one-way
    delays where the evidence allows and ``not determinable`` otherwise, always with an interval
    (:func:`.clock.pair_offsets`)."""
    return clock.pair_offsets(store, run_id)


def clock_offsets(store: Store, run_id: int) -> list[dict[str, Any]]:
    """Per node: clock offset from a reference node (:func:`.clock.node_offsets`)."""
    return clock.node_offsets(store, run_id)


def node_ranking(store: Store, run_id: int) -> list[dict[str, Any]]:
    """Nodes ranked by how late their votes arrive compared with the other signers' votes.

    For each receiver, height, round and vote type, a signer's *lateness* is its vote's arrival
    time minus the median arrival time of that vote type at that receiver (the same clock, so no
    skew enters). A node's score is the median lateness of its votes; the node with the largest
    score is the one holding rounds back. ``late_share`` is how often its vote was the last to
    arrive; nodes tied on the median are ranked by it (the report says so). Silent validators have no
    votes and are ranked by participation instead.
    """
    d = _dialect(store)
    labels = _labels(store, run_id)
    rows = store.query(
        f"""
        WITH a AS (
            SELECT receiver, signer, height, round, vote_type, first_ts,
                   first_ts - {d.quantile("first_ts", 0.5)} OVER (PARTITION BY receiver, height, round, vote_type)
                       AS lateness,
                   first_ts = max(first_ts) OVER (PARTITION BY receiver, height, round, vote_type) AS last
            FROM vote_arrivals WHERE run_id = ? AND signer IS NOT NULL
        )
        SELECT signer, {d.quantile("lateness / 1e6", 0.5)}, avg(last::INTEGER), count(*)
        FROM a GROUP BY signer ORDER BY 2 DESC, 3 DESC, 1
        """,
        [run_id],
    )
    return [
        {"rank": i + 1, "node": labels[r[0]], "median_lateness_ms": r[1], "late_share": r[2], "votes": r[3]}
        for i, r in enumerate(rows)
    ]
