"""HTTP middleware of the bftscope API: pure ASGI classes, one concern per module.

None of them buffers a request or response body (Starlette's ``BaseHTTPMiddleware`` does, and costs a task
per request); they only read headers, wrap ``send`` to edit response headers, and the body limit counts
request bytes as the app pulls them. Every refusal uses the project's JSON envelope (:mod:`.envelope`).

:func:`install_middleware` adds them in this order, outermost first:

1. **request id** — outermost, so that every response, including any other layer's refusal, carries
   ``X-Request-ID``, and the access log below can read the id.
2. **access log** — sees the final status and byte count of everything below, refusals included, and times
   the whole stack.
3. **security headers** — on every response produced below it: routes, 404s, refusals, preflights, 500s.
4. **CORS** — above the refusals, so a browser page can read a 415/429/413/500 envelope instead of seeing an
   opaque network error; it answers every ``OPTIONS`` itself, so preflights are never validated or
   rate limited (they carry no body and no credentials).
5. **error guard** — turns an unhandled exception into a 500 envelope *inside* the decorating layers above
   (Starlette's own 500 handler sits outside all user middleware; see :mod:`.envelope`).
6. **validation** — header-only refusals (403 scanners, 415, 406): the cheapest checks first.
7. **body limit** — the limit of the route that will serve the request (uploads have their own): 413 on a
   declared ``Content-Length`` up front; streamed bodies are counted as the app reads them, which only
   happens once the rate limit and the authentication gate below have let the request through.
8. **rate limit** — innermost, so only requests that would reach the app spend a client's tokens. The
   trade-off: a client sending only malformed requests is refused by the header checks above without ever
   being rate limited; those refusals cost no more than a 429 would.

Inside all of these the app factory adds the authentication gate (:mod:`bftscope.api.auth`): it needs the
store, so it is not part of this chain, and it is innermost so that no body is read before a token is.

Starlette puts user middleware between its ``ServerErrorMiddleware`` (outermost) and ``ExceptionMiddleware``
(innermost, renders ``HTTPException`` and registered handlers), so routes' error responses pass through
all of these layers too.
"""

from __future__ import annotations

from starlette.applications import Starlette

from bftscope.api.middleware.accesslog import ACCESS_LOGGER, UNMATCHED_ROUTE, AccessLogMiddleware, MetricsHook
from bftscope.api.middleware.bodylimit import BodyLimitMiddleware
from bftscope.api.middleware.config import MiddlewareConfig
from bftscope.api.middleware.cors import CORSMiddleware
from bftscope.api.middleware.envelope import (
    ErrorGuardMiddleware,
    ForbiddenError,
    InternalError,
    NotAcceptableError,
    PayloadTooLargeError,
    RateLimitedError,
    UnsupportedMediaTypeError,
    send_error,
)
from bftscope.api.middleware.headers import SecurityHeadersMiddleware
from bftscope.api.middleware.ratelimit import RateLimiter, RateLimitMiddleware, TokenBucketLimiter
from bftscope.api.middleware.requestid import RequestIdMiddleware, request_id_of
from bftscope.api.middleware.scopeinfo import TrustedProxies
from bftscope.api.middleware.validation import ValidationMiddleware

__all__ = [
    "ACCESS_LOGGER",
    "UNMATCHED_ROUTE",
    "AccessLogMiddleware",
    "BodyLimitMiddleware",
    "CORSMiddleware",
    "ErrorGuardMiddleware",
    "ForbiddenError",
    "InternalError",
    "MetricsHook",
    "MiddlewareConfig",
    "NotAcceptableError",
    "PayloadTooLargeError",
    "RateLimitMiddleware",
    "RateLimitedError",
    "RateLimiter",
    "RequestIdMiddleware",
    "SecurityHeadersMiddleware",
    "TokenBucketLimiter",
    "TrustedProxies",
    "UnsupportedMediaTypeError",
    "ValidationMiddleware",
    "install_middleware",
    "request_id_of",
    "send_error",
]


def install_middleware(
    app: Starlette,
    config: MiddlewareConfig,
    metrics_hook: MetricsHook | None = None,
    *,
    rate_limiter: RateLimiter | None = None,
) -> None:
    """Add the whole stack to ``app`` (a FastAPI or Starlette app, before it starts serving).

    ``metrics_hook`` receives ``(method, route template, status, duration_s)`` per request. ``rate_limiter``
    replaces the in-process token buckets (a shared limiter, or one with a fake clock in tests); it is
    ignored when ``config.rate_limit_enabled`` is false.
    """
    # Starlette wraps each added middleware around the ones added before, so add innermost first.
    if config.rate_limit_enabled:
        app.add_middleware(RateLimitMiddleware, config=config, limiter=rate_limiter)
    app.add_middleware(BodyLimitMiddleware, config=config)
    app.add_middleware(ValidationMiddleware, config=config)
    app.add_middleware(ErrorGuardMiddleware, config=config)
    app.add_middleware(CORSMiddleware, config=config)
    app.add_middleware(SecurityHeadersMiddleware, config=config)
    app.add_middleware(AccessLogMiddleware, config=config, metrics_hook=metrics_hook)
    app.add_middleware(RequestIdMiddleware, config=config)
