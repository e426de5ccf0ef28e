"""The broadcasters without a server: in-process delivery from another thread in order, a full subscription
drops its oldest batches (counted) instead of holding the publisher, the setting chooses the engine, and a
Redis that cannot be reached costs the publisher nothing but a count — its password never reaches the log."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from pydantic import SecretStr
from redis.asyncio.client import PubSub

from bftscope.config import Settings
from bftscope.live.broadcast import MemoryBroadcaster, RedisBroadcaster, make_broadcaster
from tests.families.casper.servers import free_port
from tests.families.casper.test_instances import REDIS, RedisServer


def test_memory_delivers_in_order_from_any_thread_and_drops_the_oldest_when_full() -> None:
    async def run() -> None:
        b = MemoryBroadcaster()
        await b.start()
        sub, other, small = b.subscribe("t", 100), b.subscribe("u", 100), b.subscribe("t", 2)
        writer = threading.Thread(target=lambda: [b.publish("t", b"%d" % i) for i in range(10)])
        writer.start()
        writer.join()
        got = [(await anext(sub)).data for _ in range(10)]
        assert got == [b"%d" % i for i in range(10)]
        assert [(await anext(small)).data for _ in range(2)] == [b"8", b"9"] and small.dropped == 8
        assert b.stats.dropped == 8 and b.stats.published == 10
        b.publish("u", b"x", value=["x"])
        msg = await anext(other)
        assert (msg.data, msg.value) == (b"x", ["x"])
        b.unsubscribe(sub)
        await b.close()

    asyncio.run(run())


def test_the_setting_chooses_the_engine(tmp_path: object) -> None:
    assert isinstance(make_broadcaster(Settings()), MemoryBroadcaster)
    redis = make_broadcaster(Settings(redis_url=SecretStr("redis://:hunter2@127.0.0.1:1/0")))
    assert isinstance(redis, RedisBroadcaster) and "hunter2" not in redis.label


def test_an_unreachable_redis_is_counted_and_its_password_never_logged(caplog: pytest.LogCaptureFixture) -> None:
    async def run() -> RedisBroadcaster:
        b = RedisBroadcaster(f"redis://:hunter2@127.0.0.1:{free_port()}/0", backoff_s=0.01, max_backoff_s=0.05)
        await b.start()
        sub = b.subscribe("t")
        b.publish("t", b"batch")  # local subscribers get it at once, Redis or not
        assert (await anext(sub)).data == b"batch"
        for _ in range(500):
            if b.stats.unpublished and b.stats.reconnects >= 2:
                break
            await asyncio.sleep(0.01)
        await b.close()
        return b

    with caplog.at_level(logging.INFO, logger="bftscope.live.broadcast"):
        b = asyncio.run(run())
    assert b.stats.unpublished == 1 and not b.stats.connected and b.stats.reconnects >= 2
    assert "hunter2" not in caplog.text and "***" in caplog.text


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    if not os.path.exists(REDIS):
        pytest.skip(f"redis-server not found at {REDIS} (install the redis-server package)")
    server = RedisServer(free_port())
    server.start()
    yield server
    server.stop()


def test_close_stops_the_reader_even_when_redis_py_loses_its_cancellation(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What kept ``bftscope serve`` from exiting on SIGTERM after a loaded run: redis-py absorbed the reader's
    cancellation mid-read (``task.cancelling()`` stayed 1, so each later poll's own timeout was taken for it)
    and the reader polled on, subscribed, while ``close()`` waited for it forever. Injected here: the first
    cancellation that reaches ``get_message`` is absorbed the same way."""
    original = PubSub.get_message
    lost: list[int] = []

    async def get_message(self: PubSub, *args: Any, **kwargs: Any) -> Any:
        try:
            return await original(self, *args, **kwargs)
        except asyncio.CancelledError:
            if lost:
                raise
            lost.append(asyncio.current_task().cancelling())  # type: ignore[union-attr]
            return None

    monkeypatch.setattr(PubSub, "get_message", get_message)
    probe = redis.Redis.from_url(redis_server.url)

    async def run() -> None:
        b = RedisBroadcaster(redis_server.url, poll_s=0.05)
        await b.start()
        b.subscribe("t")
        for _ in range(500):
            if b.stats.connected and "t" in b._subscribed:
                break
            await asyncio.sleep(0.01)
        assert probe.pubsub_numsub("t") == [(b"t", 1)]
        tasks = list(b._tasks)
        closing = asyncio.ensure_future(b.close())
        try:  # shielded: cancelling close() would cancel the reader a second time, which hides the hang
            await asyncio.wait_for(asyncio.shield(closing), 3)
        except TimeoutError:
            for t in tasks:
                t.cancel()
            raise AssertionError("close() did not return: the reader polls on") from None
        # checked here, not after asyncio.run (which cancels whatever still runs, again)
        assert lost == [1]  # the reader's cancellation was lost, as under load
        assert [t.get_name() for t in tasks if not t.done()] == []
        assert probe.pubsub_numsub("t") == [(b"t", 0)]  # the reader left Redis

    try:
        asyncio.run(run())
    finally:
        probe.close()
