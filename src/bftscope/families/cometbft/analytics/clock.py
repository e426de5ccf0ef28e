"""Clock offsets between the nodes of a run, with what the data can and cannot say about them.

A one-hop delivery a→b is measured as ``receive time on b's clock − send time on a's clock`` =
``path delay a→b + θ`` where θ is how far b's clock is ahead of a's. The two directions of a pair give
``d_ab = δ_ab + θ`` and ``d_ba = δ_ba − θ``: two equations, three unknowns. Nothing in the logs can
separate θ from a difference between δ_ab and δ_ba (a node whose outbound path is slow looks exactly
like a node whose clock is behind), so this module states every offset with the evidence and the
uncertainty, and says "not determinable" rather than invent a number:

* **bounds** — since no message arrives before it is sent, ``θ ∈ [−min d_ba, min d_ab]`` always;
* **symmetric-floor estimate** — ``θ ≈ (min d_ab − min d_ba) / 2``, right when the *fastest*
  message each way takes the same time (queueing, flush timers and gossip sleeps vary; the floor of a
  path usually does not). Minima, not medians: a flush timer or a busy queue moves a median, not the
  floor;
* **consistency checks** — if paths are symmetric, every other way of reading the pair gives the same
  θ: the low and middle quantiles of the two directions (a skew shifts a whole distribution, a slow
  path changes its shape), each well-sampled message type, and cycles of three nodes (the offsets
  around a triangle must add up to 0). The largest disagreement is the pair's ``asymmetry_ms``. Up to
  :data:`ASYMMETRY_TOLERANCE_MS` the pair is ``estimated`` with that disagreement as its uncertainty;
  beyond it the pair is ``not determinable`` and only its bounds are stated.

Per node, offsets are given relative to a reference node, chained over estimated pairs. What no check
can catch: a constant extra delay on every message one node sends (the same for every message, type
and moment) is, to any observer, identical to that node's clock running behind. See docs/metrics.md.
"""

from __future__ import annotations

import copy
import heapq
import itertools
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from bftscope.store.base import Store

__all__ = ["ASYMMETRY_TOLERANCE_MS", "ESTIMATED", "NOT_DETERMINABLE", "estimate_once", "node_offsets", "pair_offsets"]

ESTIMATED = "estimated"
NOT_DETERMINABLE = "not determinable"
# Largest disagreement between the consistency checks still read as noise. Jitter and 10 ms flush
# timers on symmetric simulated links stay under 1 ms; a 200 ms flush timer shows 70 ms; the real
# single-host v0.34 testnet, whose WAL "send" times include gossip sleeps, shows 4–17 ms.
ASYMMETRY_TOLERANCE_MS = 5.0
# An estimate is never stated tighter than this: timestamps and matching have their own error.
_RESOLUTION_MS = 1.0
# A message type takes part in the checks with at least this many deliveries each way.
_MIN_TYPE_SAMPLES = 10
_QUANTILES = (("p05", 0.05), ("p25", 0.25), ("p50", 0.5))


def _links(store: Store, run_id: int) -> tuple[dict[tuple[int, int], tuple[Any, ...]], dict[tuple[int, int, str], Any]]:
    """Per directed link: (count, min, p05, p25, p50) of delivery latency in ms; per link and type: p50."""
    d = store.dialect
    qs = ", ".join(d.quantile("latency_ns / 1e6", q) for _, q in _QUANTILES)
    rows = store.query(
        f"""
        SELECT sender, receiver, count(*), min(latency_ns) / 1e6, {qs}
        FROM deliveries WHERE run_id = ? AND recv_ts IS NOT NULL GROUP BY sender, receiver
        """,
        [run_id],
    )
    per_type = store.query(
        f"""
        SELECT sender, receiver, msg_type, {d.quantile("latency_ns / 1e6", 0.5)}
        FROM deliveries WHERE run_id = ? AND recv_ts IS NOT NULL
        GROUP BY sender, receiver, msg_type HAVING count(*) >= {_MIN_TYPE_SAMPLES}
        """,
        [run_id],
    )
    return {(r[0], r[1]): tuple(r[2:]) for r in rows}, {(r[0], r[1], r[2]): r[3] for r in per_type}


def _pairs(store: Store, run_id: int) -> tuple[dict[int, str], list[dict[str, Any]]]:
    """Every unordered pair with deliveries both ways, node ids in ``_a``/``_b`` (a < b)."""
    labels = {n.node: n.label for n in store.nodes(run_id)}
    links, per_type = _links(store, run_id)
    out: list[dict[str, Any]] = []
    for (a, b), ab in sorted(links.items()):
        ba = links.get((b, a))
        if a >= b or ba is None:
            continue
        est = (ab[1] - ba[1]) / 2
        checks = {name: (ab[2 + k] - ba[2 + k]) / 2 for k, (name, _) in enumerate(_QUANTILES)}
        types = {t: (v - per_type[(b, a, t)]) / 2 for (s, r, t), v in sorted(per_type.items())
                 if (s, r) == (a, b) and (b, a, t) in per_type}  # fmt: skip
        out.append({
            "_a": a, "_b": b, "a": labels[a], "b": labels[b], "_est": est,
            "a_to_b_min_ms": ab[1], "b_to_a_min_ms": ba[1],
            "a_to_b_median_ms": ab[4], "b_to_a_median_ms": ba[4],
            "samples_a_to_b": ab[0], "samples_b_to_a": ba[0],
            "one_way_ms": (ab[4] + ba[4]) / 2, "median_estimate_ms": checks["p50"],
            "bounds_ms": [-ba[1], ab[1]],
            "_checks": {"quantiles": checks, "message_types": types},
        })  # fmt: skip
    return labels, out


def _triangle_residuals(pairs: list[dict[str, Any]]) -> dict[tuple[int, int], float]:
    """Per pair: the smallest |offset sum| over the triangles through it (symmetric-floor offsets).

    A pair whose own path is asymmetric spoils every triangle it is in; a symmetric pair next to it
    still closes some triangle without it (with four or more nodes), so the smallest residual blames
    only the pair that is at fault. A gradient — one node slow outbound on all its links — closes
    every triangle and is caught by the other checks or not at all.
    """
    est: dict[tuple[int, int], float] = {(p["_a"], p["_b"]): float(p["_est"]) for p in pairs}

    def off(x: int, y: int) -> float | None:  # how far y's clock is ahead of x's
        if (x, y) in est:
            return est[(x, y)]
        return -est[(y, x)] if (y, x) in est else None

    nodes = sorted({n for key in est for n in key})
    best: dict[tuple[int, int], float] = {}
    for x, y, z in itertools.combinations(nodes, 3):
        legs = (off(x, y), off(y, z), off(z, x))
        if any(v is None for v in legs):
            continue
        residual = abs(sum(v for v in legs if v is not None))
        for key in ((x, y), (y, z), (x, z)):
            best[key] = min(best.get(key, residual), residual)
    return best


class _Once:
    """One run's estimate, computed by the first caller; the others wait for it and get their own copy."""

    def __init__(self, store: Store, run_id: int) -> None:
        self._store, self._run_id = store, run_id
        self._lock = threading.Lock()
        self._value: tuple[dict[int, str], list[dict[str, Any]]] | None = None

    def get(self) -> tuple[dict[int, str], list[dict[str, Any]]]:
        with self._lock:
            if self._value is None:
                self._value = _estimate_now(self._store, self._run_id)
            return copy.deepcopy(self._value)


_shared: dict[tuple[int, int], _Once] = {}
_shared_lock = threading.Lock()


@contextmanager
def estimate_once(store: Store, run_id: int) -> Iterator[None]:
    """While open, the run's estimate is computed once for every answer that needs it (a rollup refresh
    asks three times: links, clock skew, clock offsets — each ~0.13 s on a 4 M-event run). Only for a
    stretch in which the run's deliveries do not change."""
    key = (id(store), run_id)
    with _shared_lock:
        _shared[key] = _Once(store, run_id)
    try:
        yield
    finally:
        with _shared_lock:
            _shared.pop(key, None)


def _estimate(store: Store, run_id: int) -> tuple[dict[int, str], list[dict[str, Any]]]:
    with _shared_lock:
        once = _shared.get((id(store), run_id))
    return once.get() if once is not None else _estimate_now(store, run_id)


def _estimate_now(store: Store, run_id: int) -> tuple[dict[int, str], list[dict[str, Any]]]:
    labels, pairs = _pairs(store, run_id)
    triangles = _triangle_residuals(pairs)
    for p in pairs:
        est, checks = p["_est"], p["_checks"]
        residual = triangles.get((p["_a"], p["_b"]))
        checks["triangle_residual_ms"] = residual
        alternatives = [*checks["quantiles"].values(), *checks["message_types"].values()]
        asymmetry = max([abs(v - est) for v in alternatives] + [residual or 0.0])
        lo, hi = p["bounds_ms"]
        if asymmetry <= ASYMMETRY_TOLERANCE_MS and lo <= est <= hi:
            u = max(asymmetry, _RESOLUTION_MS)
            p.update(status=ESTIMATED, b_ahead_of_a_ms=est, uncertainty_ms=u,
                     interval_ms=[max(lo, est - u), min(hi, est + u)])  # fmt: skip
        else:
            p.update(status=NOT_DETERMINABLE, b_ahead_of_a_ms=None, uncertainty_ms=None, interval_ms=[lo, hi])
        p["symmetric_floor_estimate_ms"] = est
        p["asymmetry_ms"] = asymmetry
        p["evidence"] = checks
    return labels, pairs


def _public(p: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in p.items() if not k.startswith("_")}


def pair_offsets(store: Store, run_id: int) -> list[dict[str, Any]]:
    """Per unordered node pair with deliveries both ways: how far b's clock is ahead of a's.

    ``b_ahead_of_a_ms`` is the symmetric-floor estimate when ``status`` is ``estimated`` and null when
    ``not determinable``; ``interval_ms`` holds the offset in either case (estimate ± uncertainty, or the
    causal bounds). ``evidence`` has every check's own estimate. See the module docstring.
    """
    return [_public(p) for p in _estimate(store, run_id)[1]]


def node_offsets(store: Store, run_id: int) -> list[dict[str, Any]]:
    """Per node: its clock's offset from a reference node's, chained over estimated pairs.

    The reference is the node with the most estimated pairs. Another node's offset follows the chain
    of estimated pairs from the reference with the smallest summed uncertainty (a direct pair when it
    is estimated); its uncertainty is that sum. A node no estimated chain reaches is ``not
    determinable``; its interval is then the causal bounds of its pair with the reference, if any.
    """
    labels, pairs = _estimate(store, run_id)
    if not pairs:
        return []
    edges: dict[int, list[tuple[int, float, float]]] = {}
    bounds: dict[tuple[int, int], list[float]] = {}
    for p in pairs:
        a, b = p["_a"], p["_b"]
        bounds[(a, b)] = p["bounds_ms"]
        bounds[(b, a)] = [-p["bounds_ms"][1], -p["bounds_ms"][0]]
        if p["status"] == ESTIMATED:
            edges.setdefault(a, []).append((b, p["b_ahead_of_a_ms"], p["uncertainty_ms"]))
            edges.setdefault(b, []).append((a, -p["b_ahead_of_a_ms"], p["uncertainty_ms"]))
    order = sorted(labels, key=lambda n: (-len(edges.get(n, [])), labels[n]))
    ref = order[0]
    # Dijkstra on uncertainty: node → (summed uncertainty, offset from ref, path)
    best: dict[int, tuple[float, float, list[int]]] = {ref: (0.0, 0.0, [ref])}
    heap: list[tuple[float, int]] = [(0.0, ref)]
    while heap:
        u, x = heapq.heappop(heap)
        if u > best[x][0]:
            continue
        for y, off, uy in edges.get(x, []):
            if y not in best or u + uy < best[y][0]:
                best[y] = (u + uy, best[x][1] + off, [*best[x][2], y])
                heapq.heappush(heap, (u + uy, y))
    out = []
    for n in sorted(labels, key=lambda n: labels[n]):
        row: dict[str, Any] = {"node": labels[n], "reference": labels[ref], "is_reference": n == ref}
        if n in best:
            u, off, path = best[n]
            u = max(u, _RESOLUTION_MS) if n != ref else 0.0
            row.update(offset_ms=off, uncertainty_ms=u, interval_ms=[off - u, off + u], status=ESTIMATED,
                       evidence={"path": [labels[k] for k in path]})  # fmt: skip
        else:
            row.update(offset_ms=None, uncertainty_ms=None, interval_ms=bounds.get((ref, n)), status=NOT_DETERMINABLE,
                       evidence={"path": None, "reason": "no chain of estimated pairs reaches it"})  # fmt: skip
        out.append(row)
    return out
