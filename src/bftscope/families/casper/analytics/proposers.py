"""Proposer share against weight: does each validator propose as many blocks as its weight says it should?

Casper (Highway) picks each round's leader at random in proportion to weight, so over ``n`` blocks of an
era a validator of weight share ``p`` proposes ``k ~ Binomial(n, p)`` of them (approximately: a round
whose block was not finalized is not a block). Per era, each validator of the era's weights and each
proposer: ``proposed``, ``proposed_share = k / n``, ``weight``, ``weight_share = p``, ``difference =
proposed_share − weight_share``, ``expected = n·p`` and the binomial ``z = (k − n·p) / √(n·p·(1 − p))`` with its
two-sided ``p_value`` from the normal approximation (``small_sample`` when ``n·p·(1 − p) < 5``, where the
approximation is poor). Validators with weight that proposed nothing are listed with 0.

Over the window, eras are independent binomials: ``expected = Σ nₑ·pₑ``, variance ``Σ nₑ·pₑ·(1 − pₑ)``,
over the blocks of eras whose weights are known only. An era without known weights (its previous era-end block
not stored) gives ``weight``/``weight_share``/``z`` None with ``weights_note`` saying why; its blocks are
counted in the window's ``blocks_without_weights``. A proposer missing from known weights gets weight None
and ``note`` "not in the era's weights".
"""

from __future__ import annotations

import math
from typing import Any

from bftscope.families.casper.analytics.weights import NO_WEIGHTS, era_weights
from bftscope.families.casper.analytics.window import Window
from bftscope.store.base import Store

__all__ = ["binomial_z", "proposers"]

_NOT_IN_WEIGHTS = "not in the era's weights"


def binomial_z(k: float, expected: float, variance: float) -> tuple[float | None, float | None]:
    """(z, two-sided p-value by the normal approximation); None where the variance is 0."""
    if variance <= 0:
        return None, None
    z = (k - expected) / math.sqrt(variance)
    return z, math.erfc(abs(z) / math.sqrt(2))


def _row(validator: str, k: int, n: int, weight: int | None, total: int | None, note: str | None) -> dict[str, Any]:
    row: dict[str, Any] = {"validator": validator, "proposed": k, "proposed_share": k / n if n else None,
                           "weight": None if weight is None else str(weight), "weight_share": None,
                           "difference": None, "expected": None, "z": None, "p_value": None,
                           "small_sample": None, "note": note}  # fmt: skip
    if weight is not None and total and n:
        p = weight / total
        var = n * p * (1 - p)
        row["z"], row["p_value"] = binomial_z(k, n * p, var)
        row.update(weight_share=p, difference=k / n - p, expected=n * p, small_sample=var < 5)
    return row


def proposers(store: Store, run_id: int, window: Window) -> dict[str, Any]:
    """``eras`` (per era: ``era_id``, ``blocks``, ``weights_known``, ``weights_note``, ``validators``) and
    ``window`` (``blocks``, ``blocks_without_weights``, ``validators`` over the eras with weights)."""
    counts: dict[int, dict[str, int]] = {}
    for era, proposer, n in store.query(
            "SELECT era_id, proposer, count(*) FROM casper_blocks WHERE run_id = :run AND timestamp_ms "
            "BETWEEN :lo AND :hi GROUP BY era_id, proposer", window.params(run_id)):  # fmt: skip
        counts.setdefault(int(era), {})[str(proposer)] = int(n)
    weights = era_weights(store, run_id, min(counts), max(counts)) if counts else {}
    eras_out = []
    # the window: per validator, proposed / blocks / expected / variance over eras with weights
    acc: dict[str, list[float]] = {}  # proposed, expected, variance
    blocks_known = blocks_unknown = 0
    for era in sorted(counts):
        c, w = counts[era], weights.get(era)
        n = sum(c.values())
        total = sum(w.values()) if w else None
        rows = []
        for v in sorted(set(c) | set(w or ())):
            k = c.get(v, 0)
            weight = None if w is None else w.get(v)
            note = NO_WEIGHTS if w is None else (_NOT_IN_WEIGHTS if weight is None else None)
            rows.append(_row(v, k, n, weight, total, note))
            if w is not None:
                a = acc.setdefault(v, [0.0, 0.0, 0.0])
                a[0] += k
                if weight is not None and total:
                    p = weight / total
                    a[1] += n * p
                    a[2] += n * p * (1 - p)
        rows.sort(key=lambda r: (-r["proposed"], r["validator"]))
        if w is None:
            blocks_unknown += n
        else:
            blocks_known += n
        eras_out.append({"era_id": era, "blocks": n, "weights_known": w is not None,
                         "weights_note": None if w is not None else NO_WEIGHTS, "validators": rows})  # fmt: skip
    overall: list[dict[str, Any]] = []
    nk = blocks_known
    for v, (got, expected, var) in acc.items():
        z, pv = binomial_z(got, expected, var)
        overall.append({"validator": v, "proposed": int(got), "proposed_share": got / nk if nk else None,
                        "weight_share": expected / nk if nk else None,
                        "difference": (got - expected) / nk if nk else None, "expected": expected, "z": z,
                        "p_value": pv, "small_sample": var < 5})  # fmt: skip
    overall.sort(key=lambda r: (-r["proposed"], r["validator"]))
    return {"window": window.describe(), "eras": eras_out,
            "overall": {"blocks": blocks_known, "blocks_without_weights": blocks_unknown, "validators": overall}}
