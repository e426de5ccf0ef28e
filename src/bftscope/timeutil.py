"""Timestamps: RFC 3339 text ↔ Unix nanoseconds, fast enough for every log line.

Parsing caches the epoch second of the ``YYYY-MM-DDTHH:MM:SS`` prefix (log lines arrive in bursts
within the same second), so a line costs a slice, a dict lookup and one ``int()``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

__all__ = ["format_ns", "parse_go_duration_ns", "parse_rfc3339_ns"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_second_cache: dict[str, int] = {}
_PREFIX = re.compile(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d$")


def _epoch_second(prefix: str) -> int:
    sec = _second_cache.get(prefix)
    if sec is None:
        if not _PREFIX.match(prefix):
            raise ValueError(f"not an RFC 3339 timestamp: {prefix!r}")
        dt = datetime(
            int(prefix[0:4]), int(prefix[5:7]), int(prefix[8:10]),
            int(prefix[11:13]), int(prefix[14:16]), int(prefix[17:19]), tzinfo=UTC,
        )  # fmt: skip
        sec = int((dt - _EPOCH).total_seconds())
        if len(_second_cache) > 100_000:
            _second_cache.clear()
        _second_cache[prefix] = sec
    return sec


def parse_rfc3339_ns(text: str) -> int:
    """``2025-06-08T01:24:18.069056Z`` → Unix ns. Accepts ``Z`` or ``±HH:MM``, 0–9 fraction digits.

    Raises ``ValueError`` on anything else.
    """
    sec = _epoch_second(text[:19])
    rest = text[19:]
    frac_ns = 0
    if rest.startswith("."):
        i = 1
        n = len(rest)
        while i < n and "0" <= rest[i] <= "9":
            i += 1
        digits = rest[1:i]
        if not digits or len(digits) > 9:
            raise ValueError(f"bad fraction in timestamp {text!r}")
        frac_ns = int(digits) * 10 ** (9 - len(digits))
        rest = rest[i:]
    if rest == "Z" or rest == "+00:00":
        return sec * 1_000_000_000 + frac_ns
    if len(rest) == 6 and rest[0] in "+-" and rest[3] == ":" and rest[1:3].isdigit() and rest[4:6].isdigit():
        off = int(rest[1:3]) * 3600 + int(rest[4:6]) * 60
        sec -= off if rest[0] == "+" else -off
        return sec * 1_000_000_000 + frac_ns
    raise ValueError(f"bad zone in timestamp {text!r}")


def format_ns(ns: int) -> str:
    """Unix ns → RFC 3339 with 9 fraction digits and ``Z``."""
    sec, frac = divmod(ns, 1_000_000_000)
    dt = datetime.fromtimestamp(sec, UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + f".{frac:09d}Z"


_DUR = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNIT_NS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000, "m": 60_000_000_000,
            "h": 3_600_000_000_000}  # fmt: skip


def parse_go_duration_ns(text: str) -> int:
    """Go ``time.Duration`` text (``3s``, ``1.5s``, ``500ms``, ``1m0s``) → ns. ``ValueError`` if malformed."""
    s = text.strip()
    neg = s.startswith("-")
    if neg:
        s = s[1:]
    if s == "0":
        return 0
    pos = 0
    total = 0.0
    for m in _DUR.finditer(s):
        if m.start() != pos:
            raise ValueError(f"bad duration {text!r}")
        total += float(m.group(1)) * _UNIT_NS[m.group(2)]
        pos = m.end()
    if pos != len(s) or pos == 0:
        raise ValueError(f"bad duration {text!r}")
    return -round(total) if neg else round(total)
