"""CORS: which browser origins may read API responses, and the answer to preflight requests.

The allowlist is matched exactly against ``Origin``; an allowed origin is echoed back (never ``*``, which
browsers refuse together with credentials) with ``Access-Control-Allow-Credentials: true``. A disallowed
origin gets no ``Access-Control-Allow-Origin``, so the browser withholds the response from the page. The
static headers (methods, headers, max-age, exposed headers) are sent on every response: they grant nothing
without the origin header, and sending them unconditionally keeps caches and the old system's clients happy.
``Vary: Origin`` is on every response because its CORS headers depend on ``Origin``.

Every ``OPTIONS`` request is answered here with 204: preflights carry no credentials and no body, so they
must not be refused by content validation or spend the client's rate-limit tokens.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bftscope.api.middleware.config import MiddlewareConfig
from bftscope.api.middleware.scopeinfo import request_headers, set_response_headers

__all__ = ["ALLOW_HEADERS", "ALLOW_METHODS", "EXPOSE_HEADERS", "CORSMiddleware"]

ALLOW_HEADERS = (
    "Content-Type, Content-Length, Accept-Encoding, X-CSRF-Token, Authorization, accept, origin, "
    "Cache-Control, X-Requested-With, X-Request-ID"
)
ALLOW_METHODS = "POST, OPTIONS, GET, PUT, DELETE"
EXPOSE_HEADERS = "X-Request-ID, Retry-After"
MAX_AGE_S = 86_400

_STATIC = (
    (b"access-control-allow-headers", ALLOW_HEADERS.encode()),
    (b"access-control-allow-methods", ALLOW_METHODS.encode()),
    (b"access-control-max-age", str(MAX_AGE_S).encode()),
    (b"access-control-expose-headers", EXPOSE_HEADERS.encode()),
)


_GRANTS = (b"access-control-allow-origin", b"access-control-allow-credentials")


def _add_vary_origin(message: Message) -> None:
    headers: list[tuple[bytes, bytes]] = list(message.get("headers", ()))
    for index, (name, value) in enumerate(headers):
        if name.lower() == b"vary":
            tokens = {token.strip().lower() for token in value.split(b",")}
            if b"origin" not in tokens and b"*" not in tokens:
                headers[index] = (name, value + b", Origin")
            message["headers"] = headers
            return
    headers.append((b"vary", b"Origin"))
    message["headers"] = headers


class CORSMiddleware:
    def __init__(self, app: ASGIApp, config: MiddlewareConfig) -> None:
        self.app = app
        self._origins = frozenset(config.cors_origins)

    def _pairs(self, scope: Scope) -> list[tuple[bytes, bytes]]:
        pairs = list(_STATIC)
        origin = request_headers(scope).get("origin")
        if origin is not None and origin in self._origins:
            pairs.append((b"access-control-allow-origin", origin.encode("latin-1")))
            pairs.append((b"access-control-allow-credentials", b"true"))
        return pairs

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        pairs = self._pairs(scope)

        if scope["method"] == "OPTIONS":
            message: Message = {"type": "http.response.start", "status": 204, "headers": []}
            set_response_headers(message, pairs)
            _add_vary_origin(message)
            await send(message)
            await send({"type": "http.response.body", "body": b""})
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                # A route may not grant an origin we do not allow: ours replace any CORS headers it set.
                set_response_headers(message, pairs, drop=_GRANTS)
                _add_vary_origin(message)
            await send(message)

        await self.app(scope, receive, send_with_cors)
