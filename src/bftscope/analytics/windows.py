"""Time windows as the API and CLI give them: RFC 3339 bounds, either one open.

A family turns the ``(from_ns, to_ns)`` pair into its own window type; ``None`` means the whole run,
whose answers are the stored rollups.
"""

from __future__ import annotations

from bftscope.errors import InputError
from bftscope.timeutil import parse_rfc3339_ns

__all__ = ["parse_bounds"]


def parse_bounds(from_: str | None, to: str | None) -> tuple[int | None, int | None] | None:
    """``(from_ns, to_ns)`` (both inclusive, None = open), or None when neither bound is given."""
    if from_ is None and to is None:
        return None
    try:
        lo = parse_rfc3339_ns(from_) if from_ else None
        hi = parse_rfc3339_ns(to) if to else None
    except ValueError:
        raise InputError("invalid time range") from None
    if lo is not None and hi is not None and lo > hi:
        raise InputError("invalid time range: from is after to")
    return lo, hi
