"""Per-client rate limiting: a token bucket per client address, refused requests answered 429.

The limiter sits behind the small :class:`RateLimiter` protocol so a shared (e.g. Redis-backed) limiter can
replace the in-process :class:`TokenBucketLimiter` when the API runs as several processes: the in-process
one limits per process, so N workers allow N times the configured rate.

Clients are keyed by :meth:`TrustedProxies.client_ip`: the socket peer, or the forwarded address only when
the peer is a trusted proxy — otherwise any client could pick a fresh key per request via
``X-Forwarded-For`` and never be limited. Health probes and the metrics scrape are exempt so that an
overloaded service is not also reported dead.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from starlette.types import ASGIApp, Receive, Scope, Send

from bftscope.api.middleware.config import MiddlewareConfig
from bftscope.api.middleware.envelope import RateLimitedError, send_error
from bftscope.api.middleware.scopeinfo import TrustedProxies, route_path

__all__ = ["RateLimitMiddleware", "RateLimiter", "TokenBucketLimiter"]


class RateLimiter(Protocol):
    def acquire(self, key: str) -> float | None:
        """Spend one request of ``key``'s allowance: ``None`` if allowed, else seconds until it would be."""
        ...


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class TokenBucketLimiter:
    """In-process token buckets: capacity ``burst``, refilled continuously at ``rate_per_s`` tokens/s.

    A new client starts with a full bucket. Memory is bounded two ways, both lazily on ``acquire`` (no
    background task): buckets untouched for ``idle_ttl_s`` are dropped — by then they would be full again,
    so forgetting them changes nothing — and beyond ``max_clients`` the least recently seen is dropped.
    Buckets are kept in least-recently-seen order, so both evictions only ever look at the front.
    """

    def __init__(
        self,
        rate_per_s: float,
        burst: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        idle_ttl_s: float = 3600.0,
        max_clients: int = 100_000,
    ) -> None:
        if rate_per_s <= 0 or burst < 1 or max_clients < 1:
            raise ValueError("rate_per_s must be positive, burst and max_clients at least 1")
        self._rate = rate_per_s
        self._capacity = float(burst)
        self._clock = clock
        # Never forget a bucket that could still be below full: that would hand a drained client a refill.
        self._idle_ttl = max(idle_ttl_s, burst / rate_per_s)
        self._max_clients = max_clients
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def acquire(self, key: str) -> float | None:
        now = self._clock()
        self._evict_idle(now)
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(self._capacity, now)
            if len(self._buckets) > self._max_clients:
                self._buckets.popitem(last=False)
        else:
            elapsed = max(0.0, now - bucket.updated)
            bucket.tokens = min(self._capacity, bucket.tokens + elapsed * self._rate)
            bucket.updated = now
            self._buckets.move_to_end(key)
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return None
        return (1.0 - bucket.tokens) / self._rate

    def _evict_idle(self, now: float) -> None:
        while self._buckets:
            key, bucket = next(iter(self._buckets.items()))
            if now - bucket.updated <= self._idle_ttl:
                return
            del self._buckets[key]


class RateLimitMiddleware:
    def __init__(self, app: ASGIApp, config: MiddlewareConfig, limiter: RateLimiter | None = None) -> None:
        self.app = app
        self._enabled = config.rate_limit_enabled
        self._exempt = frozenset(config.rate_limit_exempt_paths)
        self._proxies = TrustedProxies(config.trusted_proxies)
        # `is None`, not `or`: an empty TokenBucketLimiter has len() 0 and is falsy.
        if limiter is None:
            limiter = TokenBucketLimiter(config.rate_limit_per_s, config.rate_limit_burst)
        self._limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self._enabled or route_path(scope) in self._exempt:
            await self.app(scope, receive, send)
            return
        retry_after = self._limiter.acquire(self._proxies.client_ip(scope))
        if retry_after is None:
            await self.app(scope, receive, send)
            return
        # Retry-After takes whole seconds; rounding down would invite a retry that is refused again.
        seconds = max(1, math.ceil(retry_after))
        await send_error(
            send,
            RateLimitedError("Rate limit exceeded"),
            headers=[(b"retry-after", str(seconds).encode())],
            extra={"retry_after": seconds},
        )
