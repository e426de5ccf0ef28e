"""The broadcasters without a server: in-process delivery from another thread in order, a full subscription
drops its oldest batches (counted) instead of holding the publisher, the setting chooses the engine, and a
Redis that cannot be reached costs the publisher nothing but a count — its password never reaches the log."""

from __future__ import annotations

import asyncio
import logging
import threading

import pytest
from pydantic import SecretStr

from bftscope.config import Settings
from bftscope.live.broadcast import MemoryBroadcaster, RedisBroadcaster, make_broadcaster
from tests.families.casper.servers import free_port


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
