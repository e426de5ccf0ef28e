"""The seed's WebSocket routes over a real server: each subscriber gets exactly its own channel's entities as
the seed's REST JSON (the seed's listener handed clients other clients' messages), the filter message narrows a
subscription and a malformed one is answered without ending it, the token is checked before the handshake, and
the root routes serve the root network publicly."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect
from websockets.typing import Subprotocol

from bftscope.config import Settings
from bftscope.families.casper.hub import Client, Hub
from bftscope.families.casper.publish import Entity
from bftscope.live.broadcast import MemoryBroadcaster
from tests.families.casper.gen import account, block_hash, chain, deploy_hash
from tests.families.casper.servers import Instance, serve, wait_for


@pytest.fixture
def inst(tmp_path: Path) -> Iterator[Instance]:
    cfg = Settings(data_dir=tmp_path / "a", rate_limit_enabled=False, follow_networks=False,
                   casper_root_network="c1")  # fmt: skip
    with serve(cfg) as i:
        i.add_network("c1")
        yield i


def _recv(ws: ClientConnection, n: int) -> list[dict[str, Any]]:
    return [json.loads(ws.recv(timeout=20)) for _ in range(n)]


def _clients(hub: Hub) -> list[Client]:
    return [c for clients in hub._ws.values() for c in clients]


def test_each_subscriber_gets_exactly_its_channel(inst: Instance) -> None:
    base = f"{inst.ws}/v1/casper/c1"
    routes = {"blocks": "/blocks", "block3": f"/block/{block_hash(3)}", "deploy4": f"/deploy/{deploy_hash(4)}",
              "acct0": f"/accountDeploys/{account(0)}", "acct1": f"/accountDeploys/{account(1)}",
              "nothing": f"/block/{block_hash(99)}"}  # fmt: skip
    stack = contextlib.ExitStack()
    socks = {k: stack.enter_context(connect(base + r, additional_headers=inst.headers)) for k, r in routes.items()}
    hub = inst.hub("c1")
    wait_for(lambda: hub.stats.ws_clients == len(routes), "every subscriber registered")
    sink = inst.sink("c1", flush_s=0.005)
    sink.write("n1:9999", chain(1, 6, deploys=2, sigs=3))  # 6 blocks, 12 deploys (accounts alternate), 18 sigs
    sink.flush()
    expect = {"blocks": 6, "block3": 1, "deploy4": 1, "acct0": 6, "acct1": 6, "nothing": 0}
    got = {k: _recv(ws, expect[k]) for k, ws in socks.items()}
    wait_for(lambda: hub.last_out == 36, "every entity routed")
    # nothing beyond its own channel was ever sent to any of them
    assert sorted(c.sent for c in _clients(hub)) == sorted(expect.values())
    assert [b["height"] for b in got["blocks"]] == [1, 2, 3, 4, 5, 6]
    assert got["blocks"][0] == {"blockHash": block_hash(1), "parentHash": block_hash(0),
                                "timestamp": "2023-01-01T09:55:25.312Z", "eraId": 0,
                                "proposer": "02" + f"{1:064x}", "state": "added", "height": 1,
                                "deploys": [deploy_hash(1, 0), deploy_hash(1, 1)]}  # fmt: skip
    assert got["block3"][0]["blockHash"] == block_hash(3)
    assert got["deploy4"] == [{"deployHash": deploy_hash(4), "account": account(0), "state": "processed",
                               "cost": 100000000, "errorMessage": None, "blockHash": block_hash(4)}]  # fmt: skip
    assert {d["account"] for d in got["acct0"]} == {account(0)} and {d["account"] for d in got["acct1"]} == {
        account(1)}  # fmt: skip
    assert {d["deployHash"] for d in got["acct0"] + got["acct1"]} == {deploy_hash(h, i) for h in range(1, 7)
                                                                      for i in range(2)}  # fmt: skip
    stack.close()
    wait_for(lambda: hub.stats.ws_clients == 0, "every subscriber removed")


def test_filter_message_narrows_and_a_bad_one_is_an_error_frame(inst: Instance) -> None:
    with connect(f"{inst.ws}/v1/casper/c1/blocks", additional_headers=inst.headers) as ws:
        for bad in ("not json", '{"filter": {"era": -1}}', '{"filter": {"colour": 1}}', '{"filter": {"types": 3}}',
                    '{"filter": {"types": ["Nope"]}}', "[1]", '{"filter": {"proposer": "zz"}}'):  # fmt: skip
            ws.send(bad)
            reply = json.loads(ws.recv(timeout=20))
            assert reply["code"] == "invalid_input" and reply["error"], (bad, reply)
        ws.send(json.dumps({"filter": {"era": 1, "proposer": "02" + f"{2:064x}".upper()}}))
        assert json.loads(ws.recv(timeout=20)) == {"filter": {"era": 1, "proposer": "02" + f"{2:064x}"}}
        sink = inst.sink("c1", flush_s=0.005)
        sink.write("n1:9999", chain(1, 30, deploys=0))  # era = height // 10, proposer = height % 3
        sink.flush()
        heights = [h for h in range(10, 20) if h % 3 == 2]
        assert [b["height"] for b in _recv(ws, len(heights))] == heights
        ws.send('{"filter": {}}')
        assert json.loads(ws.recv(timeout=20)) == {"filter": {}}
        sink.write("n1:9999", chain(31, 2, deploys=0))
        assert [b["height"] for b in _recv(ws, 2)] == [31, 32]


def test_the_token_is_checked_before_the_handshake(inst: Instance) -> None:
    url = f"{inst.ws}/v1/casper/c1/blocks"
    for headers, offered in (({}, None), ({"Authorization": "Bearer wrong"}, None), ({}, ["bearer.wrong"])):
        with pytest.raises(InvalidStatus) as refused:
            connect(url, additional_headers=headers, subprotocols=offered).close()  # type: ignore[arg-type]
        assert refused.value.response.status_code == 403
    for missing in ("/v1/casper/nope/blocks", "/v1/casper/c1/block/not%20hex"):
        with pytest.raises(InvalidStatus):
            connect(f"{inst.ws}{missing}", additional_headers=inst.headers).close()
    with connect(url, subprotocols=[Subprotocol("bftscope.casper"), Subprotocol(f"bearer.{inst.token}")]) as ws:
        assert ws.subprotocol == "bftscope.casper"
        inst.sink("c1", flush_s=0.005).write("n1:9999", chain(1, 1, deploys=0))
        assert _recv(ws, 1)[0]["height"] == 1


def test_root_routes_serve_the_root_network_publicly(inst: Instance) -> None:
    with connect(f"{inst.ws}/accountDeploys/{account(1)}") as ws:
        inst.sink("c1", flush_s=0.005).write("n1:9999", chain(1, 4, deploys=1))
        got = _recv(ws, 2)
    assert [(d["deployHash"], d["account"]) for d in got] == [(deploy_hash(1), account(1)),
                                                              (deploy_hash(3), account(1))]  # fmt: skip


def _entity(out_id: int) -> Entity:
    import msgspec

    return Entity(out_id, "BlockAdded", block_hash(out_id), "main", ["blocks"], 1, None, None, 0,
                  msgspec.Raw(b"{}"), msgspec.Raw(b"{}"))  # fmt: skip


def test_a_slow_subscriber_is_cut_alone_and_counted() -> None:
    async def run() -> None:
        hub = Hub("c1", MemoryBroadcaster(), ring_size=10, queue_size=3)
        fast, slow = hub.add_ws("blocks"), hub.add_ws("blocks")
        taken = []
        for out_id in range(1, 9):
            hub.route([_entity(out_id)])
            taken.extend(e.out_id for e in await fast.take() or [])
        assert taken == list(range(1, 9)) and not fast.closed
        assert slow.cut and await slow.take() is None
        assert hub.stats.cut == 1 and hub.stats.ws_clients == 1
        assert [e.out_id for e in hub.ring] == list(range(1, 9))
        hub.route([_entity(12)])  # 9–11 never arrived
        assert hub.stats.missed == 3
        await hub.close()

    asyncio.run(run())


def test_a_client_that_leaves_is_removed(inst: Instance) -> None:
    hub = inst.hub("c1")
    with connect(f"{inst.ws}/v1/casper/c1/blocks", additional_headers=inst.headers) as ws:
        wait_for(lambda: hub.stats.ws_clients == 1, "the subscriber registered")
        ws.close()
        wait_for(lambda: hub.stats.ws_clients == 0, "the subscriber removed")
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=1)


def test_more_websocket_clients_than_the_limit_are_refused(tmp_path: Path) -> None:
    cfg = Settings(data_dir=tmp_path / "a", rate_limit_enabled=False, follow_networks=False, casper_max_subscribers=1)
    with serve(cfg) as i:
        i.add_network("c1")
        with connect(f"{i.ws}/v1/casper/c1/blocks", additional_headers=i.headers) as first:
            wait_for(lambda: i.hub("c1").stats.ws_clients == 1, "the first client registered")
            with pytest.raises(InvalidStatus):
                connect(f"{i.ws}/v1/casper/c1/blocks", additional_headers=i.headers).close()
            i.sink("c1", flush_s=0.005).write("n1:9999", chain(1, 1, deploys=0))
            assert _recv(first, 1)[0]["height"] == 1  # the first one is served as before
