"""In-process fan-out: the broadcaster of a single API instance (no ``BFTSCOPE_REDIS_URL``)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Any

from bftscope.live.broadcast.base import BroadcastStats, Message, Subscription

__all__ = ["LocalTopics", "MemoryBroadcaster"]


class LocalTopics:
    """The subscriptions of this process by topic, fed on the event loop ``loop`` from any thread."""

    def __init__(self, stats: BroadcastStats) -> None:
        self.stats = stats
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: int | None = None
        self.topics: dict[str, list[Subscription]] = {}

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._thread = threading.get_ident()

    def deliver(self, topic: str, batch: bytes, value: Any = None) -> None:
        """Hand ``batch`` to the topic's subscriptions, on the loop (at once when called on it)."""
        if self.loop is None:
            return  # not started: nobody can have subscribed
        msg = Message(batch, value)
        if threading.get_ident() == self._thread:
            self._deliver(topic, msg)
        else:
            with contextlib.suppress(RuntimeError):  # the loop is closed: the server is stopping
                self.loop.call_soon_threadsafe(self._deliver, topic, msg)

    def _deliver(self, topic: str, msg: Message) -> None:
        for sub in self.topics.get(topic, ()):
            sub.put(msg)

    def add(self, topic: str, max_batches: int) -> Subscription:
        sub = Subscription(topic, max_batches, self.stats)
        self.topics.setdefault(topic, []).append(sub)
        return sub

    def remove(self, sub: Subscription) -> bool:
        """Forget ``sub``; True when it was its topic's last subscription."""
        subs = self.topics.get(sub.topic, [])
        if sub in subs:
            subs.remove(sub)
        sub.close()
        if not subs:
            self.topics.pop(sub.topic, None)
            return True
        return False

    def close_all(self) -> None:
        for subs in self.topics.values():
            for sub in subs:
                sub.close()
        self.topics.clear()


class MemoryBroadcaster:
    """Publishes to the subscriptions of this process only."""

    def __init__(self) -> None:
        self.stats = BroadcastStats()
        self.local = LocalTopics(self.stats)

    async def start(self) -> None:
        self.local.bind(asyncio.get_running_loop())

    def publish(self, topic: str, batch: bytes, value: Any = None) -> None:
        self.stats.published += 1
        self.local.deliver(topic, batch, value)

    def subscribe(self, topic: str, max_batches: int = 1024) -> Subscription:
        if self.local.loop is None:
            self.local.bind(asyncio.get_running_loop())
        return self.local.add(topic, max_batches)

    def unsubscribe(self, sub: Subscription) -> None:
        self.local.remove(sub)

    async def close(self) -> None:
        self.local.close_all()
