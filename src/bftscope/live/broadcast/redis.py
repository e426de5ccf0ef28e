"""Redis pub/sub fan-out: every API instance sharing one Redis sees what any of them published.

One Redis channel per topic (the topic string itself, e.g. ``bftscope:casper:<network>``). Each message is the
publishing instance's id (``ID_BYTES`` bytes) followed by the batch: an instance delivers its own batches to its
own subscribers at once (so they do not wait for, or depend on, Redis) and skips them when Redis echoes them.

Two tasks own the two connections: the *writer* publishes what :meth:`RedisBroadcaster.publish` handed to the
event loop (several batches in one pipeline when they queue up), the *reader* owns the pub/sub connection —
subscribing to the topics local subscribers want, between reads, so one task alone talks on it. When Redis is
unreachable, the batches the writer could not send are counted in ``stats.unpublished`` (never retried: by
then they are stale, and a subscriber sees the gap in the batches' own sequence), the outbox is bounded
(``max_pending`` batches; more are counted as unpublished too), and both tasks reconnect with a capped backoff
(``stats.reconnects``). The URL may hold a password: it is only ever logged redacted.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from bftscope.live.broadcast.base import BroadcastStats, Subscription
from bftscope.live.broadcast.memory import LocalTopics
from bftscope.live.endpoints import redact_text, redact_url

__all__ = ["ID_BYTES", "RedisBroadcaster"]

log = logging.getLogger("bftscope.live.broadcast")

ID_BYTES = 12
_ERRORS = (RedisError, OSError, asyncio.TimeoutError)


class RedisBroadcaster:
    """Publishes through the Redis at ``url`` and delivers what other instances published there."""

    def __init__(self, url: str, *, max_pending: int = 1024, backoff_s: float = 0.2, max_backoff_s: float = 5.0,
                 poll_s: float = 0.1, close_timeout_s: float = 5.0) -> None:  # fmt: skip
        self.url = url
        self.label = redact_url(url)
        self.instance = os.urandom(ID_BYTES // 2).hex().encode()
        self.max_pending = max_pending
        self.backoff_s, self.max_backoff_s, self.poll_s = backoff_s, max_backoff_s, poll_s
        self.close_timeout_s = close_timeout_s
        self._closing = False  # set by close(): both tasks stop at their next turn, cancelled or not
        self.stats = BroadcastStats(connected=False)
        self.local = LocalTopics(self.stats)
        self._outbox: collections.deque[tuple[str, bytes]] = collections.deque()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._subscribed: set[str] = set()
        self._reported = False  # the current outage was logged

    # --- publishing: any thread -------------------------------------------------------------------
    def publish(self, topic: str, batch: bytes, value: Any = None) -> None:
        self.stats.published += 1
        self.local.deliver(topic, batch, value)
        loop = self.local.loop
        if loop is None:
            self.stats.unpublished += 1
            return
        try:
            loop.call_soon_threadsafe(self._enqueue, topic, batch)
        except RuntimeError:  # the loop is closed: the server is stopping
            self.stats.unpublished += 1

    def _enqueue(self, topic: str, batch: bytes) -> None:
        if len(self._outbox) >= self.max_pending:
            self.stats.unpublished += 1
            return
        self._outbox.append((topic, batch))
        self._wake.set()

    # --- subscribing: the event loop -----------------------------------------------------------------
    def subscribe(self, topic: str, max_batches: int = 1024) -> Subscription:
        return self.local.add(topic, max_batches)  # the reader subscribes to the Redis channel at its next turn

    def unsubscribe(self, sub: Subscription) -> None:
        self.local.remove(sub)

    # --- life ----------------------------------------------------------------------------------------
    async def start(self) -> None:
        self.local.bind(asyncio.get_running_loop())
        self._closing = False
        self._wake = asyncio.Event()
        self._tasks = [asyncio.create_task(self._writer(), name="broadcast:redis-writer"),
                       asyncio.create_task(self._reader(), name="broadcast:redis-reader")]  # fmt: skip

    async def close(self) -> None:
        """Stop both tasks and close the local subscriptions; never waits more than ``close_timeout_s``.

        Cancelling is not enough on its own: under load a cancellation can be lost inside redis-py's read (the
        reader's ``CancelledError`` absorbed, ``task.cancelling()`` left at 1, every later poll's own timeout
        then taken for that cancel), and the reader polled on forever, so the server's shutdown never ended. So
        each loop also checks ``_closing``, and a task still running after the bound is logged and left behind.
        """
        self._closing = True
        self._wake.set()
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        if tasks:
            done, pending = await asyncio.wait(tasks, timeout=self.close_timeout_s)
            for task in pending:
                log.warning("redis %s: %s still running %.1f s after close; left behind", self.label,
                            task.get_name(), self.close_timeout_s)  # fmt: skip
            for task in done:
                if not task.cancelled() and task.exception() is not None:
                    log.warning("redis %s: %s failed: %s", self.label, task.get_name(),
                                redact_text(repr(task.exception())))  # fmt: skip
        self.local.close_all()

    def _client(self) -> Any:
        return aioredis.Redis.from_url(self.url, socket_connect_timeout=2, socket_timeout=5,
                                       health_check_interval=0)  # fmt: skip

    def _down(self, role: str, exc: BaseException) -> None:
        """Note a failed connection: logged once per outage (when it starts, or at the first attempt)."""
        if self.stats.connected or not self._reported:
            log.warning("redis %s: %s cannot reach Redis (%s); retrying", self.label, role,
                        redact_text(f"{type(exc).__name__}: {exc}"))  # fmt: skip
            self._reported = True
        self.stats.connected = False

    async def _writer(self) -> None:
        delay = self.backoff_s
        client = self._client()
        try:
            while not self._closing:
                if not self._outbox:
                    self._wake.clear()
                    await self._wake.wait()
                    continue  # woken by a batch, or by close()
                batch = list(self._outbox)
                self._outbox.clear()
                try:
                    async with client.pipeline(transaction=False) as pipe:
                        for topic, data in batch:
                            pipe.publish(topic, self.instance + data)
                        await pipe.execute()
                except _ERRORS as exc:
                    self.stats.unpublished += len(batch)
                    self._down("publisher", exc)
                    await _close(client)
                    await asyncio.sleep(delay)
                    delay = min(self.max_backoff_s, delay * 2)
                    self.stats.reconnects += 1
                    client = self._client()
                    continue
                delay = self.backoff_s
        finally:
            await _close(client)

    async def _reader(self) -> None:
        delay = self.backoff_s
        own = f"bftscope:instance:{self.instance.decode()}"  # always one channel: the connection stays subscribed
        while not self._closing:
            client = self._client()
            pubsub = client.pubsub()
            try:
                self._subscribed = set(self.local.topics)
                await pubsub.subscribe(own, *self._subscribed)
                if not self.stats.connected:
                    log.info("redis %s: connected", self.label)
                self.stats.connected, self._reported = True, False
                delay = self.backoff_s
                while not self._closing:
                    await self._follow_topics(pubsub)
                    msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=self.poll_s)
                    if msg is None or msg.get("type") != "message":
                        continue
                    data = msg["data"]
                    if not isinstance(data, bytes) or data[:ID_BYTES] == self.instance:
                        continue
                    self.stats.received += 1
                    channel = msg["channel"]
                    topic = channel.decode() if isinstance(channel, bytes) else str(channel)
                    self.local.deliver(topic, data[ID_BYTES:])
            except _ERRORS as exc:
                self._down("subscriber", exc)
            finally:
                with contextlib.suppress(*_ERRORS):
                    await pubsub.aclose()
                await _close(client)
            if self._closing:
                return
            await asyncio.sleep(delay)
            delay = min(self.max_backoff_s, delay * 2)
            self.stats.reconnects += 1

    async def _follow_topics(self, pubsub: Any) -> None:
        wanted = set(self.local.topics)
        if new := wanted - self._subscribed:
            await pubsub.subscribe(*new)
        if gone := self._subscribed - wanted:
            await pubsub.unsubscribe(*gone)
        self._subscribed = wanted


async def _close(client: Any) -> None:
    with contextlib.suppress(*_ERRORS):
        await client.aclose()
