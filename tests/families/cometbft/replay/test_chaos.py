"""The chaos proxy of tests/helpers cuts connections where it is told (or at seeded random points), and a
websocket client following the replay node through it sees every cut."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from websockets.asyncio.client import connect
from websockets.exceptions import WebSocketException

from bftscope.families.cometbft.replay.server import ReplayServer
from tests.families.cometbft.replay.replaydata import timeline
from tests.families.cometbft.replay.wsclient import frames_until_marker, subscribe, vote_key
from tests.helpers.chaos_proxy import ChaosProxy

PAYLOAD = bytes(range(256)) * 40  # 10,240 bytes


async def _cut_points() -> list[bytes]:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(PAYLOAD)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    got = []
    async with ChaosProxy("127.0.0.1", port, cuts=[1234, 1]) as proxy:
        for _ in range(3):
            reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
            data = b""
            try:
                while chunk := await reader.read(4096):
                    data += chunk
            except ConnectionError:
                pass
            got.append(data)
            writer.close()
        assert proxy.cut_count == 2 and proxy.cut_at == [1234, 1] and proxy.connections == 3
    server.close()
    await server.wait_closed()
    return got


def test_cuts_fall_at_the_given_byte_counts() -> None:
    first, second, third = asyncio.run(_cut_points())
    assert first == PAYLOAD[:1234]
    assert second == PAYLOAD[:1]
    assert third == PAYLOAD  # past the plan, connections pass untouched


def test_random_cuts_are_seeded() -> None:
    assert ChaosProxy.random_plan(7, 20) == ChaosProxy.random_plan(7, 20)
    assert ChaosProxy.random_plan(7, 20) != ChaosProxy.random_plan(8, 20)


def _votes(frames: list[dict[str, Any]]) -> list[tuple[int, int, int, str]]:
    return [vote_key(f) for f in frames if f["result"]["events"]["tm.event"] == ["Vote"]]


async def _follow_through_cuts() -> tuple[int, int, list[tuple[int, int, int, str]]]:
    votes: list[tuple[int, int, int, str]] = []
    seen_cuts = 0
    chaos: dict[str, Any] = {"seed": 11, "min_bytes": 1_000, "max_bytes": 4_000, "max_cuts": 20}
    srv = ReplayServer(timeline("node2"), speed=100, autostart=False)
    async with srv, ChaosProxy("127.0.0.1", srv.port, **chaos) as proxy:
        url = f"ws://127.0.0.1:{proxy.port}/websocket"
        player = srv.player
        assert player is not None
        while True:
            try:
                async with connect(url) as ws:
                    early: list[dict[str, Any]] = []
                    await subscribe(ws, events=early)  # all five kinds: plenty of bytes to cut
                    votes += _votes(early)
                    srv.start()
                    if player.finished.is_set():
                        break
                    while not player.finished.is_set():
                        try:
                            frame = await asyncio.wait_for(ws.recv(), 0.05)
                        except TimeoutError:
                            continue
                        votes += _votes([json.loads(frame)])
                    votes += _votes(await frames_until_marker(ws))
                    break
            except (WebSocketException, OSError):  # a cut in the handshake is seen too
                seen_cuts += 1
        return seen_cuts, proxy.cut_count, votes


def test_a_client_sees_each_of_20_random_cuts() -> None:
    seen, cut, votes = asyncio.run(_follow_through_cuts())
    assert cut == 20 and seen == 20
    assert len(votes) == len(set(votes))  # a node never sends an event twice, reconnect or not
    every = {(e.vote.height, e.vote.round, e.vote.type, e.vote.validator) for e in timeline("node2").events if e.vote}
    assert set(votes) < every  # what passed while the client was cut off is not sent again
