"""Block times: the intervals between the timestamps of consecutive heights (docs/casper.md "Analytics").

An interval is ``timestamp(h + 1) − timestamp(h)`` for two stored blocks of consecutive heights, both inside
the window — a gap in the heights (blocks never received, or pruned) is not an interval, and the number of
heights missing between the lowest and highest block is reported instead. Per era, an interval belongs to the
era of its later block (the time it took to produce that block), so an era's first interval starts at the
previous era's last block when that one is stored. Both timestamps are the proposers' (the chain's clock).
"""

from __future__ import annotations

from typing import Any

from bftscope.families.casper.analytics.window import Window, stats_of, stats_sql
from bftscope.store.base import Store

__all__ = ["block_times", "interval_stats"]

_BLOCKS = ("SELECT height, era_id, timestamp_ms FROM casper_blocks WHERE run_id = :run "
           "AND timestamp_ms BETWEEN :lo AND :hi")  # fmt: skip


def interval_stats(store: Store, run_id: int, window: Window) -> tuple[dict[str, Any], dict[int, dict[str, Any]]]:
    """(the window's interval summary, era → its summary), milliseconds."""
    stats = stats_sql(store.dialect, "ms")
    sql = (f"WITH b AS ({_BLOCKS}), iv AS (SELECT n.era_id AS era_id, n.timestamp_ms - p.timestamp_ms AS ms "
           "FROM b n JOIN b p ON p.height = n.height - 1) ")  # fmt: skip
    params = window.params(run_id)
    overall = stats_of(store.query(sql + f"SELECT {stats} FROM iv", params)[0])
    per_era = {int(r[0]): stats_of(r[1:])
               for r in store.query(sql + f"SELECT era_id, {stats} FROM iv GROUP BY era_id", params)}  # fmt: skip
    return overall, per_era


def block_times(store: Store, run_id: int, window: Window) -> dict[str, Any]:
    """``blocks``, ``first_height``/``last_height``, ``missing_heights`` (heights between them not stored),
    ``intervals`` (the summary over the window) and ``eras`` (per era: ``era_id`` and its summary)."""
    overall, per_era = interval_stats(store, run_id, window)
    n, lo, hi = store.query(f"SELECT count(*), min(height), max(height) FROM ({_BLOCKS}) b",
                            window.params(run_id))[0]  # fmt: skip
    return {
        "window": window.describe(),
        "blocks": int(n),
        "first_height": None if lo is None else int(lo),
        "last_height": None if hi is None else int(hi),
        "missing_heights": 0 if lo is None else int(hi) - int(lo) + 1 - int(n),
        "intervals": overall,
        "eras": [{"era_id": era, "intervals": s} for era, s in sorted(per_era.items())],
    }
