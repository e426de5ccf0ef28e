"""What a live run keeps of its heights once retention prunes their events (docs/live.md "Retention"):
the missed-votes rows (``missed_votes``) and the per-height summaries (``height_summaries``), computed from the
events just before they go, and kept for the summary window.

:func:`keep` is the family's ``keep_before_prune``: it (re)writes the rows of every height below the cut that
still has events, a batch of heights per transaction — so running it again replaces the same rows, never adds,
and the rows of heights already pruned (no events left) stay as they were. The rows of a height do not depend on
the batch it is computed in (a height's answer reads its neighbours' events whatever range is asked).
"""

from __future__ import annotations

import json
from typing import Any

from bftscope.families.cometbft.analytics import heights
from bftscope.families.cometbft.missed import votes
from bftscope.store.base import Store

__all__ = ["BATCH_HEIGHTS", "keep"]

BATCH_HEIGHTS = 1000  # heights computed and written per transaction
_MISSED = ("height", "round", "validator", "type", "status", "power", "solo", "commit_round", "idx")


def _insert(store: Store, table: str, run_id: int, columns: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
    """Insert ``rows`` (one list parameter per column, unnested together: one statement however many)."""
    if not rows:
        return
    params: dict[str, Any] = {"run": run_id}
    params.update({f"c{i}": [r[i] for r in rows] for i in range(len(columns))})
    select = ", ".join(f"unnest(:c{i})" for i in range(len(columns)))
    store.execute(f"INSERT INTO {table} (run_id, {', '.join(columns)}) SELECT :run, {select}", params)


def keep(store: Store, run_id: int, below_height: int, *, batch: int = BATCH_HEIGHTS) -> dict[str, int]:
    """Write the kept rows of the heights below ``below_height`` that still have events, ``batch`` heights per
    transaction (a week of a fast chain is many heights); returns rows written per table."""
    (lo,) = store.query("SELECT min(height) FROM events WHERE run_id = ? AND height IS NOT NULL", [run_id])[0]
    written = {"missed_votes": 0, "height_summaries": 0}
    start = below_height if lo is None else int(lo)
    while start < below_height:
        end = min(start + max(1, batch), below_height) - 1
        missed = votes.compute(store, run_id, start, end)
        summaries = heights.compute(store, run_id, start, end)
        bounds = {"run": run_id, "lo": start, "hi": end}
        with store.transaction():
            for table in ("missed_votes", "height_summaries"):
                store.execute(f"DELETE FROM {table} WHERE run_id = :run AND height BETWEEN :lo AND :hi", bounds)
            _insert(store, "missed_votes", run_id, _MISSED, missed)
            _insert(store, "height_summaries", run_id, heights.COLUMNS,
                    [tuple(json.dumps(s[c]) if c in ("ended_nodes", "gaps") else s[c] for c in heights.COLUMNS)
                     for s in summaries])  # fmt: skip
        written["missed_votes"] += len(missed)
        written["height_summaries"] += len(summaries)
        start = end + 1
    return {k: v for k, v in written.items() if v}
