"""Every query and path parameter of the Casper REST routes, checked before it reaches a query.

Each checker takes the text as the client sent it (``None`` when absent) and returns a typed value or raises
:class:`ParamError` with a sentence saying what is wrong; the routes answer it as a 400 in their own dialect
(the seed's text, the sidecar's JSON). Nothing here builds SQL: values are bound as parameters.

``page`` and ``limit`` follow express-paginate (the seed's middleware: ``parseInt``, so ``page=2abc`` is page 2
and ``page=abc`` page 1; a page below 1 is page 1; a limit above the maximum is the maximum) where that is
sane. Where it is not, the client gets a 400: a limit of 0, a negative or a non-number (the seed divided by
zero and sent ``"pageCount": null``), and a page beyond :data:`MAX_PAGE` (its offset would overflow).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from bftscope.timeutil import parse_rfc3339_ns

__all__ = ["DEPLOY_STATES", "INT64_MAX", "MAX_PAGE", "U64_MAX", "PageRequest", "ParamError", "block_hash",
           "deploy_states", "era", "height", "is_hash", "is_public_key", "page_request", "public_key", "time_ms",
           "u64"]  # fmt: skip

INT64_MAX: Final = 2**63 - 1
U64_MAX: Final = 2**64 - 1
MAX_PAGE: Final = 1_000_000_000
DEPLOY_STATES: Final = ("accepted", "processed", "expired", "failed")

_HASH = re.compile(r"[0-9A-Fa-f]{64}")
_PUBLIC_KEY = re.compile(r"(?:[0-9A-Fa-f]{2}){33,34}")
_DIGITS = re.compile(r"[0-9]{1,20}")
# JavaScript's parseInt(text, 10): leading white space, a sign, then the longest run of ASCII digits
_JS_INT = re.compile(r"[\t\n\v\f\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]*([+-]?[0-9]+)")


class ParamError(ValueError):
    """A parameter the client sent is not acceptable; ``str(error)`` says why."""


def is_hash(text: str) -> bool:
    """A block or deploy hash: 64 hex digits (either case, as the sidecar accepts)."""
    return _HASH.fullmatch(text) is not None


def is_public_key(text: str) -> bool:
    """A public key: its algorithm byte and key, 66 or 68 hex digits (ed25519, secp256k1)."""
    return _PUBLIC_KEY.fullmatch(text) is not None


def block_hash(text: str, name: str = "hash") -> str:
    if not is_hash(text):
        raise ParamError(f"{name} must be 64 hexadecimal characters")
    return text


def public_key(text: str, name: str = "account") -> str:
    if not is_public_key(text):
        raise ParamError(f"{name} must be a public key: 66 or 68 hexadecimal characters")
    return text


def u64(text: str) -> int | None:
    """The value of a path segment the sidecar reads as a ``u64`` (ASCII digits, at most 2^64−1), else None."""
    if _DIGITS.fullmatch(text) is None:
        return None
    value = int(text)
    return value if value <= U64_MAX else None


def _nonnegative(text: str | None, name: str) -> int | None:
    if text is None or text == "":
        return None
    if _DIGITS.fullmatch(text) is None or int(text) > INT64_MAX:
        raise ParamError(f"{name} must be an integer from 0 to {INT64_MAX}")
    return int(text)


def era(text: str | None) -> int | None:
    return _nonnegative(text, "era")


def height(text: str | None, name: str) -> int | None:
    return _nonnegative(text, name)


def time_ms(text: str | None, name: str) -> int | None:
    """An RFC 3339 time (``2023-01-01T09:55:25.312Z``) as epoch milliseconds (rounded down)."""
    if text is None or text == "":
        return None
    try:
        if len(text) > 64:
            raise ValueError(text)
        return parse_rfc3339_ns(text) // 1_000_000
    except (ValueError, OverflowError):
        raise ParamError(f"{name} must be an RFC 3339 time such as 2023-01-01T09:55:25.312Z") from None


def deploy_states(text: str | None) -> tuple[str, ...]:
    """``state=processed`` or a comma-separated list of :data:`DEPLOY_STATES`; () when absent."""
    if text is None or text == "":
        return ()
    states = tuple(s.strip() for s in text.split(","))
    if not states or any(s not in DEPLOY_STATES for s in states) or len(states) > len(DEPLOY_STATES):
        raise ParamError(f"state must be one or more of {', '.join(DEPLOY_STATES)} (comma-separated)")
    return tuple(dict.fromkeys(states))


def _js_parse_int(text: str) -> int | None:
    m = _JS_INT.match(text)
    return int(m.group(1)) if m else None


@dataclass(frozen=True)
class PageRequest:
    """The page asked for: ``page`` from 1 and ``limit`` rows, as express-paginate leaves them in the query."""

    page: int
    limit: int

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.limit


def page_request(page: list[str], limit: list[str], *, default: int = 10, maximum: int = 20) -> PageRequest:
    """``page`` and ``limit`` from every value the query gave for each (express-paginate reads a repeated
    parameter, an array, as absent)."""
    number = 1
    if len(page) == 1:
        value = _js_parse_int(page[0])
        if value is not None and value > MAX_PAGE:
            raise ParamError(f"page must be at most {MAX_PAGE}")
        number = value if value is not None and value >= 1 else 1
    size = default
    if len(limit) == 1:
        value = _js_parse_int(limit[0])
        if value is None or value < 1:
            raise ParamError(f"limit must be a positive integer (at most {maximum} are sent)")
        size = min(value, maximum)
    return PageRequest(number, size)
