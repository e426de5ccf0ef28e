"""The replay node's websocket on the real v0.34 testnet, node by node, read by a client written here."""

from __future__ import annotations

import asyncio
import base64
import json
import os
from collections import Counter
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from bftscope.families.cometbft.replay.server import ReplayServer
from tests.conftest import require_data
from tests.families.cometbft.replay.replaydata import NODES, TESTNET, timeline
from tests.families.cometbft.replay.wsclient import frames_until_marker, request, shape_diff, subscribe, vote_key

RPC = "tendermint-rpc"


def _load(rel: str) -> Any:
    return json.loads(require_data(f"{RPC}/{rel}").read_text())


async def _replay_all(node: str, drop: str | None = None) -> tuple[list[dict[str, Any]], dict[str, int]]:
    async with ReplayServer(timeline(node, drop), speed=500, autostart=False) as srv, connect(srv.ws_url) as ws:
        ids = await subscribe(ws)
        srv.start()
        assert srv.player is not None
        await srv.player.finished.wait()
        return await frames_until_marker(ws), ids


@pytest.mark.parametrize("node", NODES)
def test_every_vote_the_node_added_arrives_once(node: str) -> None:
    frames, ids = asyncio.run(_replay_all(node))
    tl = timeline(node)
    by_kind = Counter(f["result"]["events"]["tm.event"][0] for f in frames)
    assert by_kind == Counter(e.kind for e in tl.events)
    for f in frames:
        kind = f["result"]["events"]["tm.event"][0]
        assert f["id"] == ids[kind] and f["result"]["query"] == f"tm.event='{kind}'"
        assert f["result"]["data"]["type"] == "tendermint/event/" + ("RoundState" if kind == "NewRoundStep" else kind)
    votes = [vote_key(f) for f in frames if f["id"] == ids["Vote"]]
    assert len(votes) == len(set(votes))
    assert set(votes) == {(e.vote.height, e.vote.round, e.vote.type, e.vote.validator) for e in tl.events if e.vote}
    heights = [
        int(f["result"]["data"]["value"]["block"]["header"]["height"]) for f in frames if f["id"] == ids["NewBlock"]
    ]
    assert heights == list(range(1, 78))


def test_frames_have_the_recorded_shapes() -> None:
    frames, _ = asyncio.run(_replay_all("node0"))
    first = {f["result"]["events"]["tm.event"][0]: f for f in reversed(frames)}
    recorded = _load("tendermint-rs_gaia/incoming/subscribe_newblock_0.json")  # a v0.34 node's NewBlock frame
    ours = first["NewBlock"]
    assert shape_diff(ours["result"]["data"]["value"]["block"], recorded["result"]["data"]["value"]["block"]) == []
    assert set(ours) == set(recorded) and set(ours["result"]) == set(recorded["result"])
    assert set(ours["result"]["data"]["value"]) == set(recorded["result"]["data"]["value"])
    # No public recording of these exists; the shapes of live-sources.md §E (v0.34: no vote extensions).
    vote = first["Vote"]["result"]["data"]["value"]["Vote"]
    assert shape_diff(vote, {
        "type": 1, "height": "1", "round": 0, "block_id": {"hash": "", "parts": {"total": 1, "hash": ""}},
        "timestamp": "", "validator_address": "", "validator_index": 0, "signature": "",
    }) == []  # fmt: skip
    assert vote["validator_address"] == vote["validator_address"].upper() and len(vote["signature"]) == 88
    assert vote["timestamp"].endswith("Z") and "T" in vote["timestamp"]
    new_round = first["NewRound"]["result"]["data"]["value"]
    assert shape_diff(new_round, {"height": "", "round": 0, "step": "", "proposer": {"address": "", "index": 0}}) == []
    assert new_round["step"] == "RoundStepNewRound"
    assert shape_diff(first["NewRoundStep"]["result"]["data"]["value"], {"height": "", "round": 0, "step": ""}) == []
    proposal = first["CompleteProposal"]["result"]["data"]["value"]
    assert shape_diff(proposal, {"height": "", "round": 0, "step": "", "block_id": vote["block_id"]}) == []


async def _protocol() -> None:
    async with ReplayServer(timeline("node1"), speed=500, autostart=False) as srv, connect(srv.ws_url) as ws:
        sent = _load("tendermint-rs_kvstore_v0_38/outgoing/subscribe_malformed.json")
        reply = await request(ws, sent["id"], sent["method"], **sent["params"])
        assert reply["error"] == _load("tendermint-rs_kvstore_v0_38/incoming/subscribe_malformed.json")["error"]
        reply = await request(ws, 9, "subscribe", query="tm.event='Vote' AND vote.height=5")
        assert reply["error"]["code"] == -32603 and "tm.event = '<Kind>'" in reply["error"]["data"]
        assert (await request(ws, 1, "unsubscribe_all"))["error"]["data"] == "subscription not found"
        await subscribe(ws, ("Vote", "NewBlock"))
        assert (await request(ws, 2, "subscribe", query="tm.event='Vote'"))["error"]["data"] == "already subscribed"
        for i, kind in enumerate(("NewRound", "NewRoundStep", "CompleteProposal")):
            await request(ws, 10 + i, "subscribe", query=f"tm.event='{kind}'")
        full = await request(ws, 3, "subscribe", query="tm.event='ValidatorSetUpdates'")
        assert full["error"]["data"] == "max_subscriptions_per_client 5 reached"
        assert (await request(ws, 4, "unsubscribe", query="tm.event='Vote'")) == {
            "jsonrpc": "2.0",
            "id": 4,
            "result": {},
        }
        assert (await request(ws, 5, "unsubscribe", query="tm.event='Vote'"))["error"][
            "data"
        ] == "subscription not found"
        status = await request(ws, 6, "status")  # the HTTP methods work over the socket too
        assert status["result"]["sync_info"]["latest_block_height"] == "0"
        srv.start()
        assert srv.player is not None
        await srv.player.finished.wait()
        frames = await frames_until_marker(ws)
        kinds = Counter(f["result"]["events"]["tm.event"][0] for f in frames)
        assert kinds["Vote"] == 0 and kinds["NewBlock"] == 77
        assert (await request(ws, 7, "unsubscribe_all"))["result"] == {}


def test_subscribe_unsubscribe_and_errors_as_cometbft() -> None:
    asyncio.run(_protocol())


async def _late_subscriber() -> None:
    srv = ReplayServer(timeline("node3"), speed=300, autostart=False)
    async with srv, connect(srv.ws_url) as early, connect(srv.ws_url) as late:
        await subscribe(early, ("Vote",))
        srv.start()
        player = srv.player
        assert player is not None
        while player.latest_height < 30:
            await asyncio.sleep(0.005)
        await subscribe(late, ("Vote",))
        at = player.latest_height
        await player.finished.wait()
        got_early, got_late = await frames_until_marker(early), await frames_until_marker(late)
    assert 0 < len(got_late) < len(got_early)
    assert [f["result"]["data"] for f in got_late] == [f["result"]["data"] for f in got_early[-len(got_late) :]]
    assert min(vote_key(f)[0] for f in got_late) >= at  # only what happened after it subscribed


def test_a_new_subscriber_gets_events_from_now_on() -> None:
    asyncio.run(_late_subscriber())


async def _first_server_frame_opcode() -> int:
    async with ReplayServer(timeline("node0"), autostart=False, ping_interval=0.05) as srv:
        reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            f"GET /websocket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 101")
        first = await asyncio.wait_for(reader.readexactly(2), 5)  # a silent client: the server speaks first
        writer.close()
        return first[0] & 0x0F


def test_the_server_pings_its_clients() -> None:
    assert asyncio.run(_first_server_frame_opcode()) == 0x9  # a ping frame


async def _cut_by_the_server() -> None:
    srv = ReplayServer.from_paths([require_data(TESTNET)], "node0", speed=1000, autostart=False)
    async with srv, connect(srv.ws_url) as ws:
        await subscribe(ws, ("NewBlock",))
        assert await srv.cut_connections() == 1
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1012
        async with connect(srv.ws_url) as again:  # the node is still there: a follower reconnects
            assert (await request(again, 1, "health")) == {"jsonrpc": "2.0", "id": 1, "result": {}}


def test_the_server_can_drop_every_client_as_a_restart_would() -> None:
    asyncio.run(_cut_by_the_server())
