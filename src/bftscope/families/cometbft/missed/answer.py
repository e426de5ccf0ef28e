"""The missed-votes answers as the API serves them, for any run: an uploaded simulation's
(``/v1/simulations/{id}/analytics/missed``) and a followed network's (``/v1/networks/{id}/missed``) alike.

Inputs are checked here, so every route gets the same limits and the same clear errors.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bftscope.errors import InputError
from bftscope.families.cometbft.missed.summary import DEFAULT_WINDOW, summarize
from bftscope.families.cometbft.missed.votes import STATUSES, missed
from bftscope.store.base import Store

__all__ = ["DEFAULT_SPAN", "MAX_LIMIT", "MAX_VALIDATORS", "MAX_WINDOW", "check_filters", "default_range",
           "missed_page", "missed_summary"]  # fmt: skip

# Without a height range, summaries cover the last this many heights (a network followed for months has
# millions; its votes by then are what matters, and every answer stays quick).
DEFAULT_SPAN = 10_000
MAX_LIMIT = 10_000
MAX_VALIDATORS = 100
MAX_WINDOW = 100_000
_HEX = frozenset("0123456789ABCDEF")


def check_filters(
    from_height: int | None, to_height: int | None, validators: Sequence[str] | None, statuses: Sequence[str] | None
) -> tuple[list[str], list[str]]:
    """Upper-case validator addresses and the statuses asked for; InputError for anything malformed."""
    for name, h in (("from", from_height), ("to", to_height)):
        if h is not None and not 0 <= h < 1 << 62:
            raise InputError(f"{name}: a height between 0 and 2^62")
    if from_height is not None and to_height is not None and from_height > to_height:
        raise InputError("from is after to")
    vals = [v.strip().upper() for v in validators or [] if v.strip()]
    if len(vals) > MAX_VALIDATORS:
        raise InputError(f"at most {MAX_VALIDATORS} validators")
    for v in vals:
        if len(v) != 40 or not set(v) <= _HEX:
            raise InputError(f"validator {v[:60]!r}: expected a 40-character hex address")
    stats = [s.strip().lower() for s in statuses or [] if s.strip()]
    for s in stats:
        if s not in STATUSES:
            raise InputError(f"status {s[:40]!r}: one of {', '.join(STATUSES)}")
    return vals, stats


def default_range(
    store: Store, run_id: int, from_height: int | None, to_height: int | None
) -> tuple[int | None, int | None]:
    """The range asked for; without either bound, the last :data:`DEFAULT_SPAN` heights of the run."""
    if from_height is not None or to_height is not None:
        return from_height, to_height
    top = store.query("SELECT max(h) FROM (SELECT max(height) AS h FROM events WHERE run_id = :run"
                      " AND kind IN ('step', 'commit_sig') UNION ALL SELECT max(height) FROM missed_votes"
                      " WHERE run_id = :run) u", {"run": run_id})  # a live run's pruned heights: their kept rows
    last = top[0][0] if top else None
    return (None, None) if last is None or last <= DEFAULT_SPAN else (int(last) - DEFAULT_SPAN + 1, None)


def missed_page(
    store: Store,
    run_id: int,
    *,
    from_height: int | None = None,
    to_height: int | None = None,
    validators: Sequence[str] | None = None,
    statuses: Sequence[str] | None = None,
    limit: int = 1000,
    offset: int = 0,
) -> dict[str, Any]:
    """``{"data": rows, "offset", "limit", "next_offset"}``: one page of :func:`.votes.missed` rows
    (``next_offset`` None on the last page)."""
    vals, stats = check_filters(from_height, to_height, validators, statuses)
    if not 1 <= limit <= MAX_LIMIT:
        raise InputError(f"limit: between 1 and {MAX_LIMIT}")
    if offset < 0:
        raise InputError("offset: 0 or more")
    rows = missed(store, run_id, from_height=from_height, to_height=to_height, validators=vals, statuses=stats,
                  limit=limit + 1, offset=offset)  # fmt: skip
    more = len(rows) > limit
    return {"data": rows[:limit], "offset": offset, "limit": limit, "next_offset": offset + limit if more else None}


def missed_summary(
    store: Store,
    run_id: int,
    *,
    from_height: int | None = None,
    to_height: int | None = None,
    validators: Sequence[str] | None = None,
    window: int = DEFAULT_WINDOW,
) -> dict[str, Any]:
    """``{"validators": [...], "window", "from", "to"}``: per validator, totals by status and type, solo misses,
    streaks and uptime over the last ``window`` committed heights of the range (:func:`.summary.summarize`);
    without a range, the last :data:`DEFAULT_SPAN` heights."""
    vals, _ = check_filters(from_height, to_height, validators, None)
    if not 1 <= window <= MAX_WINDOW:
        raise InputError(f"window: between 1 and {MAX_WINDOW}")
    from_height, to_height = default_range(store, run_id, from_height, to_height)
    rows = missed(store, run_id, from_height=from_height, to_height=to_height, validators=vals)
    return {"window": window, "from": from_height, "to": to_height, "validators": summarize(rows, window=window)}
