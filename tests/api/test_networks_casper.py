"""A Casper network in ``bftscope serve``: ``POST /v1/networks`` with ``chain: "casper"`` follows the replayed
nodes into the run ``net:<name>`` through the Casper store (not the CometBFT event table), its status shows
each node, ``/metrics`` carries ``bftscope_casper_node_status{network,node}``, the supervisor's alert tick runs
on it, and a node that went away is "reconnecting" (3), never a node with no events."""

from __future__ import annotations

import time

from starlette.testclient import TestClient

from bftscope.families.casper.replay.server import ReplayNode
from bftscope.families.casper.synthetic import generate
from tests.api.conftest import make_user, poll_json


def test_the_server_follows_casper_nodes(client: TestClient) -> None:
    synth = generate(600, nodes=2, seed=3)
    nodes = [ReplayNode(s, first_id=f) for s, f in zip(synth.streams, synth.first_ids, strict=True)]
    for n in nodes:
        client.portal.call(n.start)
    try:
        h = make_user(client, "root1")["h"]
        body = {"name": "cs", "chain": "casper", "endpoints": [n.url for n in nodes]}
        created = client.post("/v1/networks", json=body, headers=h)
        assert created.status_code == 201, created.text
        nid = created.json()["id"]
        net = poll_json(client, f"/v1/networks/{nid}", h,
                     lambda n: (n["status"]["eventsTotal"] or 0) >= synth.total + 4)  # fmt: skip
        status = net["status"]
        assert net["chain"] == "casper" and status["state"] == "following"
        assert [e["state"] for e in status["endpoints"]] == ["connected", "connected"]
        store = client.app.state.ctx.store  # type: ignore[attr-defined]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # the sink's writer thread stores what the follower handed it
            (blocks,), = store.query("SELECT count(*) FROM casper_blocks b JOIN runs r ON r.id = b.run_id "
                                     "WHERE r.name = 'net:cs'")  # fmt: skip
            if blocks == len(synth.truth["BlockAdded"]):
                break
            time.sleep(0.05)
        assert blocks == len(synth.truth["BlockAdded"])
        (neutral,), = store.query("SELECT count(*) FROM events")
        assert neutral == 0  # a Casper network's events are the Casper store's, not the CometBFT table's
        sup = client.app.state.ctx.networks  # type: ignore[attr-defined]
        client.portal.call(sup.tick)  # the alert step on a status without rounds or votes
        metrics = client.get("/metrics").text
        for n in nodes:
            assert f'bftscope_casper_node_status{{network="cs",node="127.0.0.1:{n.port}"}} 2.0' in metrics
        client.portal.call(nodes[1].close)  # one node goes away
        net = poll_json(client, f"/v1/networks/{nid}", h, lambda n: n["status"]["endpoints"][1]["state"] != "connected")
        gone = net["status"]["endpoints"][1]
        assert gone["state"] == "reconnecting" and gone["events"] > 0 and gone["lastError"]
        metrics = client.get("/metrics").text
        assert f'bftscope_casper_node_status{{network="cs",node="127.0.0.1:{nodes[1].port}"}} 3.0' in metrics
        assert client.delete(f"/v1/networks/{nid}", headers=h).status_code == 200
        metrics = client.get("/metrics").text
        assert "bftscope_casper_node_status{" not in metrics  # a network no longer followed loses its series
    finally:
        for n in nodes:
            client.portal.call(n.close)


def test_a_casper_network_refuses_urls_no_casper_node_serves(client: TestClient) -> None:
    h = make_user(client, "root1")["h"]
    bad = client.post("/v1/networks", json={"name": "cs", "chain": "casper", "endpoints": ["ws://127.0.0.1:9/x"]},
                      headers=h)  # fmt: skip
    assert bad.status_code == 400 and "http:// or https://" in bad.text
    ok = client.post("/v1/networks", json={"name": "cs", "chain": "casper", "endpoints": ["http://127.0.0.1:9"]},
                     headers=h)  # fmt: skip
    assert ok.status_code == 201, ok.text
    nid = ok.json()["id"]
    patch = client.patch(f"/v1/networks/{nid}", json={"endpoints": ["http://127.0.0.1:9/events/blocks"]}, headers=h)
    assert patch.status_code == 400 and "unknown SSE path" in patch.text
    tm = client.post("/v1/networks", json={"name": "tm", "endpoints": ["ws://127.0.0.1:9/websocket"]}, headers=h)
    assert tm.status_code == 201, tm.text  # a CometBFT network's endpoints: as before
