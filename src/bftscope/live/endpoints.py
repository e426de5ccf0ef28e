"""RPC endpoint URLs of a followed network: what is accepted, and how one is shown without its secrets.

An endpoint may carry credentials — ``https://user:pass@rpc.example/`` or a key in the query string
(``?apikey=…``) — which the follower needs to connect. They are stored as given and never shown: every
place that prints or returns an endpoint (the API, logs, metrics labels, alert messages, errors
that quote a URL) goes through :func:`redact_url` or :func:`redact_text`.
"""

from __future__ import annotations

import re
from urllib.parse import SplitResult, urlsplit, urlunsplit

from bftscope.errors import InputError

__all__ = ["MAX_URL", "SCHEMES", "check_endpoint", "parse_listen", "redact_text", "redact_url"]

SCHEMES = ("http", "https", "ws", "wss")
MAX_URL = 2048
_HIDDEN = "***"
# userinfo in any URL inside free text ("connect to wss://u:p@host failed"), and query values (key=secret)
_USERINFO = re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://)[^/\s@]+@")
_QUERY_VALUE = re.compile(r"([?&][^=&#\s]+=)[^&#\s]*")


def check_endpoint(url: str) -> str:
    """``url`` when it may be followed: http, https, ws or wss with a host, at most :data:`MAX_URL`
    characters, no whitespace or control characters; :class:`InputError` saying why not otherwise (the
    message shows the URL redacted)."""
    if len(url) > MAX_URL:
        raise InputError(f"endpoint URL longer than {MAX_URL} characters")
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in url):
        raise InputError("endpoint URL must not contain whitespace or control characters")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 — raises ValueError for a port out of range or not a number
    except ValueError:
        raise InputError(f"endpoint {redact_text(url)!r} is not a valid URL") from None
    if parts.scheme.lower() not in SCHEMES:
        raise InputError(f"endpoint {redact_url(url)!r}: the scheme must be one of {', '.join(SCHEMES)}")
    if not parts.hostname:
        raise InputError(f"endpoint {redact_url(url)!r} has no host")
    if parts.fragment:
        raise InputError(f"endpoint {redact_url(url)!r} must not have a #fragment")
    return url


def redact_url(url: str) -> str:
    """``url`` with its user name, password and query values replaced by ``***``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return redact_text(url)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{_HIDDEN}@{netloc.rpartition('@')[2]}"
    query = _QUERY_VALUE.sub(lambda m: m.group(1) + _HIDDEN, "?" + parts.query)[1:] if parts.query else ""
    return urlunsplit(SplitResult(parts.scheme, netloc, parts.path, query, ""))


def redact_text(text: str) -> str:
    """Free text (an error message) with the secrets of any URL in it replaced by ``***``."""
    return _QUERY_VALUE.sub(lambda m: m.group(1) + _HIDDEN, _USERINFO.sub(rf"\1{_HIDDEN}@", text))


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` a replay server listens on (``[::1]:26657`` for IPv6; port 0 picks a free one)."""
    m = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:(\d{1,5})|([^:\[\]\s]+):(\d{1,5})", text.strip())
    if m is None:
        raise InputError(f"--listen {text!r}: expected HOST:PORT, e.g. 127.0.0.1:26657")
    host, port = (m[1], int(m[2])) if m[1] else (m[3], int(m[4]))
    if port > 65535:
        raise InputError(f"--listen {text!r}: port must be 0..65535")
    return host, port
