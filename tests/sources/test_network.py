"""Real servers on 127.0.0.1: the SSE transport reads a live event stream whose server cuts connections
(mid-event and cleanly) and the runner still delivers every event once, resuming with Last-Event-ID; the
websocket transport reads messages and sees a close."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route
from websockets.asyncio.server import ServerConnection, serve

from bftscope.errors import TransportClosed, TransportError
from bftscope.ingest.live import Backoff, LiveRunner, LiveSource, MemorySink, SourceState
from bftscope.sources.jsonframes import JsonFrameDecoder
from bftscope.sources.replay import read_recording
from bftscope.sources.sse import SSETransport
from bftscope.sources.websocket import WebSocketTransport
from tests.conftest import require_data

PER_CONNECTION = 3


def _payloads() -> list[bytes]:
    frames = read_recording(require_data("casper-sse/sidecar_USAGE_stream_1.sse"))
    return [f.data for _, f in frames] * 5  # 10 real events


def _app(payloads: list[bytes], seen: list[str | None]) -> Starlette:
    async def events(request: Request) -> StreamingResponse:
        last = request.headers.get("last-event-id")
        seen.append(last)
        start = int(last) if last else 0
        connection = len(seen)

        async def body() -> AsyncIterator[bytes]:
            yield b": hello\r\n\r\n"
            for i in range(start, min(start + PER_CONNECTION, len(payloads))):
                yield b"data:" + payloads[i] + b"\r\nid:" + str(i + 1).encode() + b"\r\n\r\n"
            if start + PER_CONNECTION < len(payloads):
                if connection % 2:
                    yield b'data: {"half an event'  # then the connection dies mid-event
                    raise ConnectionResetError("killed by the test")
                return  # a clean end of the stream: the client must reconnect all the same
            await asyncio.Event().wait()  # all sent: a quiet live stream

        return StreamingResponse(body(), media_type="text/event-stream")

    return Starlette(routes=[Route("/events", events)])


@contextmanager
def _server(app: Any) -> Iterator[int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="critical", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        while not server.started:
            threading.Event().wait(0.01)
        yield port
    finally:
        server.should_exit = True
        server.force_exit = True
        thread.join(timeout=5)
        sock.close()


def test_sse_transport_survives_killed_connections() -> None:
    payloads = _payloads()
    seen: list[str | None] = []
    with _server(_app(payloads, seen)) as port:
        sink = MemorySink()
        transport = SSETransport(f"http://127.0.0.1:{port}/events", timeout=5.0)
        runner = LiveRunner([LiveSource("node", transport, JsonFrameDecoder())], sink,
                            backoff=Backoff(base=0.001, cap=0.01))  # fmt: skip

        async def go() -> None:
            task = asyncio.create_task(runner.run())
            while len(sink.events) < len(payloads) and not task.done():
                await asyncio.sleep(0.01)
            await runner.stop()
            await task

        asyncio.run(go())
    assert [e.id for _, e in sink.events] == [str(i) for i in range(1, len(payloads) + 1)]
    assert [e.doc for _, e in sink.events] == [json.loads(p) for p in payloads]
    expected_opens = -(-len(payloads) // PER_CONNECTION)
    assert seen == [None, *[str(PER_CONNECTION * k) for k in range(1, expected_opens)]]
    stats = runner.stats["node"]
    assert stats.reconnects == expected_opens - 1 and stats.state is SourceState.STOPPED
    assert len(sink.gaps) == expected_opens - 1 and stats.skipped == {}


def test_sse_transport_reports_a_bad_status_and_a_refused_connection() -> None:
    async def go() -> list[str]:
        errors = []
        with _server(Starlette(routes=[])) as port:
            for url in (f"http://127.0.0.1:{port}/nothing", "http://127.0.0.1:1/events"):
                t = SSETransport(url, timeout=2.0)
                try:
                    await t.open()
                except TransportError as exc:
                    errors.append(str(exc))
                await t.close()
        return errors

    errors = asyncio.run(go())
    assert "answered 404" in errors[0] and "cannot connect" in errors[1]


def test_websocket_transport_reads_messages_until_the_server_closes() -> None:
    payloads = _payloads()[:3]

    async def handler(ws: ServerConnection) -> None:
        assert await ws.recv() == '{"subscribe": true}'
        for p in payloads:
            await ws.send(p.decode())
        await ws.close()

    async def go() -> list[bytes]:
        got: list[bytes] = []
        async with serve(handler, "127.0.0.1", 0) as server:
            port = next(iter(server.sockets)).getsockname()[1]
            t = WebSocketTransport(f"ws://127.0.0.1:{port}", subscribe=['{"subscribe": true}'])
            await t.open()
            try:
                while True:
                    got.append((await t.receive()).data)
            except TransportClosed:
                pass
            await t.close()
        return got

    assert asyncio.run(go()) == payloads
