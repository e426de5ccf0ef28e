"""Time as CometBFT's JSON writes it: RFC 3339 in UTC with up to nine fraction digits, trailing zeros dropped
(Go's ``time.RFC3339Nano``), and the zero time ``0001-01-01T00:00:00Z`` for an absent one."""

from __future__ import annotations

import re
from datetime import UTC, datetime

__all__ = ["ZERO_TIME", "format_ns", "parse_rfc3339"]

ZERO_TIME = "0001-01-01T00:00:00Z"
_RFC3339 = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)")


def format_ns(ns: int | None) -> str:
    if ns is None:
        return ZERO_TIME
    sec, frac = divmod(ns, 1_000_000_000)
    text = datetime.fromtimestamp(sec, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    digits = f"{frac:09d}".rstrip("0")
    return f"{text}.{digits}Z" if digits else f"{text}Z"


def parse_rfc3339(text: str) -> int | None:
    """Unix ns of an RFC 3339 time (as in ``genesis.json``), or None when it is not one."""
    m = _RFC3339.fullmatch(text.strip())
    if m is None:
        return None
    zone = "+00:00" if m[3] == "Z" else m[3]
    try:
        base = datetime.fromisoformat(m[1] + zone)
    except ValueError:
        return None
    return int(base.timestamp()) * 1_000_000_000 + int((m[2] or "0").ljust(9, "0"))
