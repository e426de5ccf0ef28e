"""The access log: one JSON line per HTTP request on the ``bftscope.access`` logger, plus a metrics hook.

What is logged is chosen so the log can be shipped anywhere without review: the path without its query
string (queries may carry tokens or search terms), and no headers at all (``Authorization`` carries bearer
tokens, cookies carry sessions). The client is the address the rate limiter uses, so both agree.

The optional ``metrics_hook(method, route, status, duration_s)`` is how a Prometheus histogram is fed.
``route`` is the route *template* Starlette records in ``scope["route"]`` (``/v1/runs/{run_id}``), never
the raw path: label values must be a small fixed set, and a raw path would mint a series per id or per
scanner probe. Requests no route handled (404s, and requests refused by a middleware before routing)
get the label ``"<unmatched>"``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bftscope.api.middleware.config import MiddlewareConfig
from bftscope.api.middleware.requestid import request_id_of
from bftscope.api.middleware.scopeinfo import TrustedProxies

__all__ = ["ACCESS_LOGGER", "UNMATCHED_ROUTE", "AccessLogMiddleware", "MetricsHook", "route_label"]

ACCESS_LOGGER = "bftscope.access"
UNMATCHED_ROUTE = "<unmatched>"

MetricsHook = Callable[[str, str, int, float], None]
"""``(method, route template or "<unmatched>", status, duration in seconds)``."""

_access = logging.getLogger(ACCESS_LOGGER)
_log = logging.getLogger(__name__)


def route_label(scope: Scope) -> str:
    path = getattr(scope.get("route"), "path", None)
    return path if isinstance(path, str) and path else UNMATCHED_ROUTE


class AccessLogMiddleware:
    def __init__(self, app: ASGIApp, config: MiddlewareConfig, metrics_hook: MetricsHook | None = None) -> None:
        self.app = app
        self._proxies = TrustedProxies(config.trusted_proxies)
        self._metrics_hook = metrics_hook

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # if the app raises before responding, the server answers 500
        bytes_out = 0

        async def counting_send(message: Message) -> None:
            nonlocal status, bytes_out
            if message["type"] == "http.response.start":
                status = int(message["status"])
            elif message["type"] == "http.response.body":
                bytes_out += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, counting_send)
        finally:
            self._record(scope, status, bytes_out, time.perf_counter() - started)

    def _record(self, scope: Scope, status: int, bytes_out: int, duration_s: float) -> None:
        if _access.isEnabledFor(logging.INFO):
            line = {
                "request_id": request_id_of(scope),
                "method": scope["method"],
                "path": scope["path"],  # the ASGI path never includes the query string
                "status": status,
                "duration_ms": round(duration_s * 1000, 3),
                "client": self._proxies.client_ip(scope),
                "bytes_out": bytes_out,
            }
            _access.info(json.dumps(line, separators=(",", ":")))
        if self._metrics_hook is not None:
            try:
                self._metrics_hook(scope["method"], route_label(scope), status, duration_s)
            except Exception:
                # The response is already sent; a broken metrics backend must not turn it into an error.
                _log.exception("metrics hook failed")
