"""Error responses sent by the middleware stack, in the project's one JSON envelope.

Owns two things:

* The refusals the middlewares send themselves (415, 406, 403, 429, 413, 500), declared as
  :class:`~bftscope.errors.BftscopeError` subclasses so their status/code pairs live in the same hierarchy
  the routes use and render through the same :meth:`~bftscope.errors.BftscopeError.envelope`:
  ``{"error": message, "code": code}`` with ``Content-Type: application/json``.
* :class:`ErrorGuardMiddleware`, which turns an unhandled exception into a 500 envelope. Starlette answers
  unhandled exceptions in its ``ServerErrorMiddleware``, which sits *outside* every user middleware: that
  500 would carry no request id, no security or CORS headers, and would not be the envelope. The guard sits
  just inside CORS, so every decorating layer sees its response; it then re-raises, so the server still
  logs the traceback. (Starlette still calls an app-registered ``Exception`` handler, e.g. for reporting,
  but discards its response because one was already sent.)
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bftscope.api.middleware.config import MiddlewareConfig
from bftscope.errors import BftscopeError, ForbiddenError, PayloadTooLargeError, UnsupportedMediaTypeError

__all__ = [
    "ErrorGuardMiddleware",
    "ForbiddenError",
    "InternalError",
    "NotAcceptableError",
    "PayloadTooLargeError",
    "RateLimitedError",
    "UnsupportedMediaTypeError",
    "send_error",
]


class NotAcceptableError(BftscopeError):
    code = "not_acceptable"
    status = 406


class RateLimitedError(BftscopeError):
    code = "rate_limited"
    status = 429


class InternalError(BftscopeError):
    code = "internal_error"
    status = 500


async def send_error(
    send: Send,
    error: BftscopeError,
    *,
    headers: Sequence[tuple[bytes, bytes]] = (),
    extra: Mapping[str, Any] | None = None,
) -> None:
    """Send ``error`` as a complete response; ``extra`` adds top-level fields (e.g. ``retry_after``)."""
    body = json.dumps({**error.envelope(), **(extra or {})}, separators=(",", ":")).encode()
    await send(
        {
            "type": "http.response.start",
            "status": error.status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class ErrorGuardMiddleware:
    """Answer an unhandled exception with a 500 envelope (if nothing was sent yet), then re-raise it."""

    def __init__(self, app: ASGIApp, config: MiddlewareConfig) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            if not started:
                await send_error(send, InternalError("Internal server error"))
            raise
