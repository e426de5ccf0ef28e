"""Security headers on every HTTP response, whoever produced it (route, 404, refusal, 500 envelope).

The API only ever returns JSON, so the policy is the strictest one: nothing may be framed, sniffed or
loaded from elsewhere. ``Server`` is removed so responses do not advertise the stack (uvicorn adds its own
at the protocol level; run it with ``server_header=False`` to drop that one too).

HSTS is only sent on responses to requests that arrived over TLS: browsers ignore it over plain HTTP, and
sending it from a development server on ``http://localhost`` would be noise. Behind a TLS-terminating
proxy, the proxy's ``X-Forwarded-Proto`` is believed only when it is a configured trusted proxy.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bftscope.api.middleware.config import MiddlewareConfig
from bftscope.api.middleware.scopeinfo import TrustedProxies, route_path, set_response_headers

__all__ = ["API_CSP", "DOCS_CSP", "SecurityHeadersMiddleware"]

API_CSP = "default-src 'self'"
"""For every API response: JSON needs nothing, so nothing is allowed beyond the origin itself."""

DOCS_CSP = "; ".join(
    [
        "default-src 'self'",
        # FastAPI's Swagger UI and ReDoc pages load their bundles from jsDelivr and boot them with an
        # inline <script>; ReDoc also uses inline styles, Google Fonts and blob: web workers.
        "script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net",
        "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net https://fonts.googleapis.com",
        "font-src 'self' https://fonts.gstatic.com",
        "img-src 'self' data: https://fastapi.tiangolo.com https://cdn.redoc.ly",
        "worker-src 'self' blob:",
        "frame-ancestors 'none'",
    ]
)
"""For the interactive docs only. ``'unsafe-inline'`` is acceptable there because those pages render no
user data; the JSON API keeps :data:`API_CSP`."""

_DOCS_PATHS = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc"})

_STATIC = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-xss-protection", b"1; mode=block"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"strict-origin-when-cross-origin"),
)


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp, config: MiddlewareConfig) -> None:
        self.app = app
        self._proxies = TrustedProxies(config.trusted_proxies)
        self._hsts = f"max-age={config.hsts_max_age}; includeSubDomains".encode() if config.hsts else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        csp = DOCS_CSP if route_path(scope) in _DOCS_PATHS else API_CSP
        pairs = [*_STATIC, (b"content-security-policy", csp.encode())]
        if self._hsts is not None and self._proxies.is_https(scope):
            pairs.append((b"strict-transport-security", self._hsts))

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                set_response_headers(message, pairs, drop=(b"server",))
            await send(message)

        await self.app(scope, receive, send_with_headers)
