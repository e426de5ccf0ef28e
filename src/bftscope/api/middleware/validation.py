"""Cheap request screening from headers alone, before any body is read or any route runs.

Three refusals, checked in this order:

* 403 for well-known scanners announcing themselves in ``User-Agent`` (sqlmap, nmap, nikto). This is noise
  reduction, not security: a real attacker changes the header.
* 415 when a ``POST``/``PUT``/``PATCH`` carries a body that is neither JSON nor multipart. The media type
  is parsed, not substring-matched: ``text/plain; x=application/json`` is a CORS-"simple" type a foreign
  page may send without a preflight, so letting it through would reopen the CSRF hole the check closes.
  A request *without* a body needs no ``Content-Type`` (the system we replace refused a bare
  ``POST /process``; that was a bug).
* 406 when ``Accept`` is present and admits none of the types we can produce. HTML is producible only by
  the docs pages and Prometheus text formats only by ``/metrics``, so those are accepted on those paths only.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from bftscope.api.middleware.config import MiddlewareConfig
from bftscope.api.middleware.envelope import (
    ForbiddenError,
    NotAcceptableError,
    UnsupportedMediaTypeError,
    send_error,
)
from bftscope.api.middleware.scopeinfo import request_headers, route_path

__all__ = ["ValidationMiddleware"]

_SCANNERS = ("sqlmap", "nmap", "nikto")
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_BODY_TYPES = frozenset({"application/json", "multipart/form-data"})

_API_ACCEPT = frozenset({"application/json", "*/*", "application/*"})
_PATH_ACCEPT = {
    "/docs": _API_ACCEPT | {"text/html"},
    "/docs/oauth2-redirect": _API_ACCEPT | {"text/html"},
    "/redoc": _API_ACCEPT | {"text/html"},
    "/metrics": _API_ACCEPT | {"text/plain", "application/openmetrics-text"},
}


def _essence(media_type: str) -> str:
    """``"Application/JSON; charset=utf-8"`` → ``"application/json"``."""
    return media_type.split(";", 1)[0].strip().lower()


def _accepted(accept: str, producible: frozenset[str]) -> bool:
    for media_range in accept.split(","):
        essence, _, params = media_range.partition(";")
        if any(_is_zero_q(param) for param in params.split(";")):
            continue  # "q=0" means "not this one"
        if essence.strip().lower() in producible:
            return True
    return False


def _is_zero_q(param: str) -> bool:
    name, _, value = param.partition("=")
    if name.strip().lower() != "q":
        return False
    try:
        return float(value) == 0.0
    except ValueError:
        return False


def _has_body(content_length: str | None, transfer_encoding: str | None) -> bool:
    if transfer_encoding is not None and "chunked" in transfer_encoding.lower():
        return True
    if content_length is None:
        return False
    try:
        return int(content_length) > 0
    except ValueError:
        return True  # unparsable: assume a body; the body limit answers the bad header itself


class ValidationMiddleware:
    def __init__(self, app: ASGIApp, config: MiddlewareConfig) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = request_headers(scope)

        agent = headers.get("user-agent", "").lower()
        if any(scanner in agent for scanner in _SCANNERS):
            await send_error(send, ForbiddenError("Request rejected"))
            return

        has_body = scope["method"] in _BODY_METHODS and _has_body(
            headers.get("content-length"), headers.get("transfer-encoding")
        )
        if has_body and _essence(headers.get("content-type", "")) not in _BODY_TYPES:
            message = "Content-Type must be application/json or multipart/form-data"
            await send_error(send, UnsupportedMediaTypeError(message))
            return

        accept = ",".join(headers.getlist("accept")).strip()
        if accept and not _accepted(accept, _PATH_ACCEPT.get(route_path(scope), _API_ACCEPT)):
            await send_error(send, NotAcceptableError("API only supports application/json responses"))
            return

        await self.app(scope, receive, send)
