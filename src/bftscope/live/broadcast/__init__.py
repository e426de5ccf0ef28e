"""Broadcasters: how a published batch reaches every subscriber of its topic, in this process or in every API
instance (docs/casper.md "Publishing", "Several instances").

:class:`Broadcaster` is the protocol — ``publish(topic, batch)`` from any thread without waiting, and
``subscribe(topic)``, an async iterator of the batches published after it — with two engines:
:class:`MemoryBroadcaster` (in-process) and :class:`RedisBroadcaster` (Redis pub/sub, one Redis channel per
topic, so that every instance sharing the Redis sees what any of them published). :func:`make_broadcaster`
chooses by ``BFTSCOPE_REDIS_URL``. Neither names a chain family: a topic is an opaque string.
"""

from __future__ import annotations

from bftscope.config import Settings
from bftscope.live.broadcast.base import Broadcaster, BroadcastStats, Message, Subscription
from bftscope.live.broadcast.memory import MemoryBroadcaster
from bftscope.live.broadcast.redis import RedisBroadcaster

__all__ = ["BroadcastStats", "Broadcaster", "MemoryBroadcaster", "Message", "RedisBroadcaster", "Subscription",
           "make_broadcaster"]  # fmt: skip


def make_broadcaster(settings: Settings) -> Broadcaster:
    """Redis pub/sub when ``BFTSCOPE_REDIS_URL`` is set, else in-process. Must be called in the event loop that
    will deliver the batches."""
    if settings.redis_url is not None:
        return RedisBroadcaster(settings.redis_url.get_secret_value())
    return MemoryBroadcaster()
