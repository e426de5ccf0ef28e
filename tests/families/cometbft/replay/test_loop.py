"""``--at-end loop``: the recording plays again with heights that keep growing, as one unbroken chain."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import httpx
from websockets.asyncio.client import connect

from bftscope.families.cometbft.replay.cmttime import parse_rfc3339
from bftscope.families.cometbft.replay.server import ReplayServer
from tests.families.cometbft.replay.replaydata import timeline
from tests.families.cometbft.replay.wsclient import frames_until_marker, subscribe

N = 77  # blocks in the recording


async def _two_laps() -> tuple[list[dict[str, Any]], dict[str, Any], dict[str, Any], dict[str, Any]]:
    srv = ReplayServer(timeline("node1"), speed=2000, loop=True, autostart=False)
    async with srv, connect(srv.ws_url) as ws:
        await subscribe(ws, ("NewBlock",))
        srv.start()
        player = srv.player
        assert player is not None
        while player.latest_height < 2 * N + 5:
            await asyncio.sleep(0.01)
        await player.stop()
        frames = await frames_until_marker(ws)
        async with httpx.AsyncClient(base_url=srv.url) as client:
            block = (await client.get(f"/block?height={N + 1}")).json()["result"]
            commit = (await client.get(f"/commit?height={2 * N}")).json()["result"]
            vals = (await client.get(f"/validators?height={N + 3}")).json()["result"]
    return [f["result"]["data"]["value"]["block"] for f in frames], block, commit, vals


def test_a_looped_replay_is_one_growing_chain() -> None:
    blocks, block, commit, vals = asyncio.run(_two_laps())
    heights = [int(b["header"]["height"]) for b in blocks]
    assert heights == list(range(1, len(heights) + 1)) and len(heights) > 2 * N
    times = [parse_rfc3339(b["header"]["time"]) for b in blocks]
    assert all(a is not None and b is not None and a < b for a, b in itertools.pairwise(times))
    for prev, b in itertools.pairwise(blocks):  # each block commits to the one before, across laps too
        assert b["last_commit"]["height"] == prev["header"]["height"]
        assert b["header"]["last_block_id"] == b["last_commit"]["block_id"]
    recorded = timeline("node1").blocks
    assert blocks[N]["last_commit"]["block_id"]["hash"] == recorded[N].block_id.hash  # lap 2 starts on lap 1's end
    assert blocks[N + 4]["last_commit"]["block_id"]["hash"] == recorded[4].block_id.hash  # height N+5 stands for 5
    assert block["block"]["header"]["height"] == str(N + 1)
    assert block["block"]["last_commit"]["height"] == str(N)
    assert block["block"]["header"]["last_block_id"] == block["block"]["last_commit"]["block_id"]
    assert commit["signed_header"]["commit"]["height"] == str(2 * N)
    assert vals["block_height"] == str(N + 3) and vals["total"] == "4"
