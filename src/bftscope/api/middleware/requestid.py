"""The request id: one token tying a client's report, the access log line and the app's logs together.

A caller (or a gateway) may supply ``X-Request-ID`` to correlate across services; it is kept only if it is
1–128 characters of ``[A-Za-z0-9._-]``, because it is echoed into a response header and written to logs,
where anything else could forge log lines or smuggle header syntax. Otherwise a fresh uuid4 hex is used.

The id is stored in ``scope["state"]["request_id"]`` (so routes read ``request.state.request_id``) and set
on every response. This is the outermost middleware so that every response, including other middlewares'
refusals, carries it.
"""

from __future__ import annotations

import re
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bftscope.api.middleware.config import MiddlewareConfig
from bftscope.api.middleware.scopeinfo import request_headers, set_response_headers

__all__ = ["REQUEST_ID_HEADER", "RequestIdMiddleware", "request_id_of"]

REQUEST_ID_HEADER = "X-Request-ID"
_VALID = re.compile(r"[A-Za-z0-9._-]{1,128}")


def request_id_of(scope: Scope) -> str | None:
    """The id :class:`RequestIdMiddleware` assigned to this request, if it ran."""
    state = scope.get("state")
    value = state.get("request_id") if isinstance(state, dict) else None
    return value if isinstance(value, str) else None


class RequestIdMiddleware:
    def __init__(self, app: ASGIApp, config: MiddlewareConfig) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        incoming = request_headers(scope).get("x-request-id")
        request_id = incoming if incoming is not None and _VALID.fullmatch(incoming) else uuid.uuid4().hex
        # setdefault, not assignment: the server may have put lifespan state into this per-request dict.
        scope.setdefault("state", {})["request_id"] = request_id
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        header = [(REQUEST_ID_HEADER.lower().encode(), request_id.encode())]

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                set_response_headers(message, header)
            await send(message)

        await self.app(scope, receive, send_with_id)
