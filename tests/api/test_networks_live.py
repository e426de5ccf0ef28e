"""End to end on the real v0.34 testnet: the server follows a network whose endpoint is ``bftscope replay`` of
node1 with one validator's votes dropped. Its feed carries the node's votes, its status reaches height 40,
its missed votes show the dropped validator absent (and only it), and its missed-votes alert fires on
``/metrics`` for that validator alone."""

from __future__ import annotations

import orjson
import pytest
from starlette.testclient import TestClient

pytest.importorskip("bftscope.families.cometbft.live.follower", reason="the follower (branch follow) is not merged")

from bftscope.families.cometbft.replay.server import ReplayServer
from tests.api.conftest import make_user, poll_json
from tests.families.cometbft.replay.replaydata import timeline

DROPPED = "032DF8EFA3F8F921BFCAD4E72AC251A5760F3E4C"  # node3's validator


def test_the_server_follows_a_replayed_node(client: TestClient) -> None:
    tl = timeline("node1", drop=DROPPED)
    reached = 40  # the recording's node restarts at height 50: far enough to judge, quick at this speed
    srv = ReplayServer(tl, speed=25, start_on_subscribe=True, autostart=False)
    client.portal.call(srv.__aenter__)
    try:
        admin = make_user(client, "root1")
        h = admin["h"]
        body = {"name": "v034", "endpoints": [srv.url], "alerts": {"missedVotes": 6, "uptimePercent": None}}
        nid = client.post("/v1/networks", json=body, headers=h).json()["id"]
        with client.websocket_connect(f"/v1/networks/{nid}/feed?kinds=vote_added", headers=h) as ws:
            batch = orjson.loads(ws.receive_text())
        assert batch and {r["kind"] for r in batch} == {"vote_added"}
        net = poll_json(client, f"/v1/networks/{nid}", h, lambda n: (n["status"]["committed"] or 0) >= reached)
        status = net["status"]
        assert status["state"] == "following" and status["endpoints"][0]["state"] == "live"
        sup = client.app.state.ctx.networks  # type: ignore[attr-defined]
        absent = poll_json(client, f"/v1/networks/{nid}/missed?status=absent", h, lambda p: len(p["data"]) > 0)
        assert {r["validator"] for r in absent["data"]} == {DROPPED}
        client.portal.call(sup.tick)
        metrics = client.get("/metrics").text
        alerts = [line for line in metrics.splitlines() if line.startswith("bftscope_alert_active{")]
        assert alerts == [f'bftscope_alert_active{{network="v034",rule="missed_votes",subject="{DROPPED}"}} 1.0']
        assert 'bftscope_network_height{network="v034"}' in metrics
    finally:
        client.portal.call(srv.__aexit__, None, None, None)
