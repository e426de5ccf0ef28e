"""The SSE transport's idle timeout: any bytes (a ``:`` keep-alive too) keep a connection alive; no bytes at all
for ``idle_timeout`` seconds is a lost connection (:class:`TransportError`), which a follower reconnects."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from bftscope.errors import TransportError
from bftscope.sources.sse import SSETransport


def _mock(body: AsyncIterator[bytes]) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body)

    return httpx.MockTransport(handler)


async def _keepalives_then_event() -> AsyncIterator[bytes]:
    for _ in range(20):  # 20 keep-alives 0.05 s apart: 1 s of no event, never 0.5 s without bytes
        yield b":\n\n"
        await asyncio.sleep(0.05)
    yield b"data:{}\nid:1\n\n"


async def _silent() -> AsyncIterator[bytes]:
    yield b'data:{"ApiVersion":"1.5.6"}\n\n'
    await asyncio.sleep(30)
    yield b"data:late\n\n"


def test_keep_alive_comments_count_as_activity() -> None:
    async def main() -> bytes:
        t = SSETransport("http://node/events/main", idle_timeout=0.5, transport=_mock(_keepalives_then_event()))
        await t.open()
        try:
            return (await t.receive()).data
        finally:
            await t.close()

    assert asyncio.run(main()) == b"{}"


def test_no_bytes_for_the_idle_timeout_is_a_lost_connection() -> None:
    async def main() -> None:
        t = SSETransport("http://node/events/main", idle_timeout=0.3, transport=_mock(_silent()))
        await t.open()
        try:
            assert (await t.receive()).data == b'{"ApiVersion":"1.5.6"}'
            await t.receive()
        finally:
            await t.close()

    with pytest.raises(TransportError, match=r"no bytes for 0\.3 s"):
        asyncio.run(main())
