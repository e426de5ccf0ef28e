"""Era statistics: for each era with a block in the window, its heights, blocks, duration, block times, whether
its era-end (switch) block is stored, its validators and weights, and its faults and equivocators.

``duration_ms`` is the last stored block's timestamp minus the first's (within the window): an era whose
first blocks were never received looks shorter, which ``missing_heights`` and ``era_end`` let a reader
judge. ``faults`` counts the Fault events of the era (``casper_faults``); ``equivocators`` and
``inactive_validators`` are those the era's own era-end block reports (its ``era_report``, read from the
stored payload), None while that block is not stored.
"""

from __future__ import annotations

from typing import Any

import msgspec

from bftscope.families.casper.analytics.blocktimes import interval_stats
from bftscope.families.casper.analytics.weights import NO_WEIGHTS, era_weights
from bftscope.families.casper.analytics.window import Window, stats_of
from bftscope.store.base import Store

__all__ = ["eras"]


class _Report(msgspec.Struct):
    equivocators: list[str] = []
    inactive_validators: list[str] = []


class _EraEnd(msgspec.Struct):
    era_report: _Report | None = None


class _Header(msgspec.Struct):
    era_end: _EraEnd | None = None


class _Block(msgspec.Struct):
    header: _Header


class _Added(msgspec.Struct):
    block: _Block


_ERA_END = msgspec.json.Decoder(dict[str, _Added])


def _era_reports(store: Store, run_id: int, window: Window) -> dict[int, _Report]:
    rows = store.query("SELECT b.era_id, p.raw FROM casper_blocks b JOIN casper_payloads p ON p.run_id = b.run_id "
                       "AND p.out_id = b.out_id WHERE b.run_id = :run AND b.era_end "
                       "AND b.timestamp_ms BETWEEN :lo AND :hi", window.params(run_id))  # fmt: skip
    out: dict[int, _Report] = {}
    for era, raw in rows:
        try:
            end = _ERA_END.decode(raw)["BlockAdded"].block.header.era_end
        except (msgspec.DecodeError, KeyError):
            continue  # the decoder accepted it, so this cannot happen short of a hand-edited store
        if end is not None:
            out[int(era)] = end.era_report or _Report()
    return out


def eras(store: Store, run_id: int, window: Window) -> list[dict[str, Any]]:
    """One row per era (ascending); see the module's docstring."""
    rows = store.query(
        "SELECT era_id, min(height), max(height), count(*), min(timestamp_ms), max(timestamp_ms), "
        "max(CASE WHEN era_end THEN 1 ELSE 0 END) FROM casper_blocks WHERE run_id = :run "
        "AND timestamp_ms BETWEEN :lo AND :hi GROUP BY era_id ORDER BY era_id", window.params(run_id))  # fmt: skip
    if not rows:
        return []
    _, per_era = interval_stats(store, run_id, window)
    weights = era_weights(store, run_id, int(rows[0][0]), int(rows[-1][0]))
    faults = {int(e): int(n) for e, n in store.query(
        "SELECT era_id, count(*) FROM casper_faults WHERE run_id = :run AND era_id BETWEEN :lo AND :hi "
        "GROUP BY era_id", {"run": run_id, "lo": int(rows[0][0]), "hi": int(rows[-1][0])})}  # fmt: skip
    reports = _era_reports(store, run_id, window)
    out = []
    for era, lo, hi, n, first_ms, last_ms, end in rows:
        era = int(era)
        w = weights.get(era)
        report = reports.get(era)
        out.append({
            "era_id": era, "first_height": int(lo), "last_height": int(hi), "blocks": int(n),
            "missing_heights": int(hi) - int(lo) + 1 - int(n),
            "first_timestamp_ms": int(first_ms), "last_timestamp_ms": int(last_ms),
            "duration_ms": float(int(last_ms) - int(first_ms)),
            "intervals": per_era.get(era, stats_of((0,) + (None,) * 6)),
            "era_end": bool(end),
            "validators": None if w is None else [{"validator": v, "weight": str(x)} for v, x in w.items()],
            "validator_count": None if w is None else len(w),
            "total_weight": None if w is None else str(sum(w.values())),
            "weights_note": None if w is not None else NO_WEIGHTS,
            "faults": faults.get(era, 0),
            "equivocators": None if report is None else report.equivocators,
            "equivocator_count": None if report is None else len(report.equivocators),
            "inactive_validator_count": None if report is None else len(report.inactive_validators),
        })  # fmt: skip
    return out
