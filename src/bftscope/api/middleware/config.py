"""The one configuration object of the HTTP middleware stack.

It is a plain frozen dataclass rather than part of :class:`bftscope.config.Settings` so the middlewares
can be built and tested without reading the environment; the app factory maps settings onto it. Every
field has a safe default, and :meth:`MiddlewareConfig.__post_init__` rejects values that would silently
weaken a check (a wildcard CORS origin, an unparsable proxy address), so a bad deployment fails at startup.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

__all__ = ["MiddlewareConfig"]


@dataclass(frozen=True)
class MiddlewareConfig:
    """Knobs of :func:`bftscope.api.middleware.install_middleware`."""

    cors_origins: tuple[str, ...] = ("http://localhost:3000", "http://localhost:3001")
    """Browser origins allowed to call the API with credentials, compared exactly (scheme, host and port,
    no trailing slash). ``*`` is refused: a wildcard cannot be combined with credentials."""

    rate_limit_per_s: float = 100.0
    """Sustained requests per second per client: tokens refilled continuously into each client's bucket."""

    rate_limit_burst: int = 100
    """Bucket capacity: how many requests a client may make at once after being idle."""

    rate_limit_enabled: bool = True
    """Turn the per-client rate limit off (e.g. when a gateway in front already enforces one)."""

    rate_limit_exempt_paths: tuple[str, ...] = ("/healthz", "/readyz", "/metrics")
    """Paths never rate limited: probes and the scraper must not be refused under load."""

    trusted_proxies: tuple[str, ...] = ()
    """IP addresses or CIDR blocks of reverse proxies whose ``X-Forwarded-For`` / ``X-Forwarded-Proto``
    are believed. Empty means the socket peer is the client, whatever the headers claim."""

    max_body_bytes: int = 1024 * 1024
    """Largest request body accepted on non-upload routes (JSON bodies); larger ones get 413."""

    max_upload_bytes: int | None = None
    """Largest upload request: an upload route whose declared ``Content-Length`` is larger gets 413 before
    a byte is read (the upload code counts streamed bytes itself). None: no declared-length check."""

    upload_routes: tuple[str, ...] = ("POST /v1/simulations/{id}/upload",)
    """Upload routes, as ``"METHOD /route/{template}"`` exactly as the router declares them: a request the
    router serves with one of them is exempt from ``max_body_bytes`` (uploads have their own limits). What
    counts is the route that matched, never the path's spelling."""

    multipart_upload_routes: tuple[str, ...] = ("POST /v1/users/{userId}/projects/{projectId}/simulations",)
    """Routes that are upload routes only for a ``multipart/form-data`` body; a JSON body stays limited."""

    hsts: bool = True
    """Send ``Strict-Transport-Security`` on responses to requests that arrived over TLS."""

    hsts_max_age: int = 31_536_000
    """``max-age`` of the HSTS header, in seconds (default one year)."""

    def __post_init__(self) -> None:
        for origin in self.cors_origins:
            if origin == "*" or origin.endswith("/"):
                raise ValueError(f"CORS origin {origin!r} must be an exact origin like 'https://host:port'")
        for proxy in self.trusted_proxies:
            try:
                ipaddress.ip_network(proxy, strict=False)
            except ValueError as exc:
                raise ValueError(f"trusted proxy {proxy!r} is not an IP address or CIDR block") from exc
        if not self.rate_limit_per_s > 0:
            raise ValueError("rate_limit_per_s must be positive")
        if self.rate_limit_burst < 1:
            raise ValueError("rate_limit_burst must be at least 1")
        for entry in (*self.upload_routes, *self.multipart_upload_routes):
            method, _, template = entry.partition(" ")
            if not method.isupper() or not template.startswith("/"):
                raise ValueError(f"upload route {entry!r} must look like 'POST /path/{{param}}'")
        if self.max_body_bytes < 0 or self.hsts_max_age < 0:
            raise ValueError("max_body_bytes and hsts_max_age must not be negative")
