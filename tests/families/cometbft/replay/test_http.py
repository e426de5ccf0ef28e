"""The replay node's HTTP RPC (GET and JSON-RPC POST) on the real v0.34 testnet: shapes as the recorded
responses, pagination and errors as CometBFT words them, the dropped validator in commits, the fault mode."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from bftscope.families.cometbft.replay.server import ReplayServer
from bftscope.families.cometbft.validators import priority
from tests.conftest import require_data
from tests.families.cometbft.replay.replaydata import timeline
from tests.families.cometbft.replay.wsclient import shape_diff

DROPPED = "5917B48A13EFF68A47E9C309518DEB3E648749EE"
Check = Callable[[httpx.AsyncClient, ReplayServer], Awaitable[None]]


def _recorded(rel: str) -> Any:
    return json.loads(require_data(f"tendermint-rpc/{rel}").read_text())["result"]


def _run(check: Check, *, finished: bool = True, node: str = "node0", **kw: Any) -> None:
    async def main() -> None:
        async with ReplayServer(timeline(node, kw.pop("drop", None)), speed=1000, autostart=finished, **kw) as srv:
            if finished:
                assert srv.player is not None
                await srv.player.finished.wait()
            async with httpx.AsyncClient(base_url=srv.url) as client:
                await check(client, srv)

    asyncio.run(main())


async def _get(client: httpx.AsyncClient, path: str, status: int = 200) -> Any:
    r = await client.get(path)
    assert r.status_code == status, r.text
    body = r.json()
    assert body["jsonrpc"] == "2.0" and body["id"] == -1
    return body["result"] if status == 200 else body["error"]


def test_responses_have_the_recorded_shapes() -> None:
    async def check(c: httpx.AsyncClient, srv: ReplayServer) -> None:
        kv = "tendermint-rs_kvstore_v0_38/incoming"
        status = await _get(c, "/status")
        assert shape_diff(status, _recorded(f"{kv}/status.json")) == []
        assert status["sync_info"]["latest_block_height"] == "77"
        assert status["sync_info"]["latest_block_hash"] == srv.timeline.blocks[77].block_id.hash
        assert status["validator_info"]["address"] == DROPPED and status["node_info"]["network"] == "chain-H5iqVd"
        block = await _get(c, "/block?height=10")
        want = _recorded(f"{kv}/block_at_height_10.json")
        assert shape_diff(block, want) == [
            "$.block.header.version: keys ['app'] differ"  # v0.34 omits an app version of 0
        ]
        commit = await _get(c, "/commit?height=10")
        assert [d for d in shape_diff(commit, _recorded(f"{kv}/commit_at_height_10.json")) if "version" not in d] == []
        assert commit["canonical"] is True and commit["signed_header"]["commit"]["block_id"] == block["block_id"]
        assert block["block"]["last_commit"]["height"] == "9"
        state = await _get(c, "/consensus_state")
        assert shape_diff(state, _recorded(f"{kv}/consensus_state.json")) == []
        assert state["round_state"]["height/round/step"] == "77/0/8"
        assert shape_diff(await _get(c, "/net_info"), _recorded("tendermint-rs_gaia/incoming/net_info.json")) == []
        vals = await _get(c, "/validators?height=10")
        assert shape_diff(vals, _recorded("cometbft_v0.38_openapi_examples/ValidatorsResponse.json")) == []

    _run(check)


def test_validators_pages_and_priorities() -> None:
    async def check(c: httpx.AsyncClient, srv: ReplayServer) -> None:
        pages = [await _get(c, f"/validators?height=10&per_page=1&page={p}") for p in (1, 2, 3, 4)]
        assert [p["count"] for p in pages] == ["1"] * 4 and {p["total"] for p in pages} == {"4"}
        addresses = [p["validators"][0]["address"] for p in pages]
        assert addresses == [v.address for v in srv.timeline.validators]
        state = priority.schedule(priority.genesis((v.address, v.power) for v in srv.timeline.validators), 10)[-1]
        assert [int(p["validators"][0]["proposer_priority"]) for p in pages] == [
            v.proposer_priority for v in state.validators
        ]
        err = await _get(c, "/validators?per_page=1&page=5", 500)
        assert err == {
            "code": -32603,
            "message": "Internal error",
            "data": "page should be within [1, 4] range, given 5",
        }
        assert (await _get(c, "/validators?page=0", 500))["data"] == "page should be within [1, 1] range, given 0"
        assert (await _get(c, "/validators?per_page=0"))["count"] == "4"  # below 1: the default 30
        assert (await _get(c, "/validators?per_page=1000"))["count"] == "4"  # above 100: 100
        assert (await _get(c, "/validators"))["block_height"] == "78"  # the next height's set is known
        err = await _get(c, "/validators?height=79", 500)
        assert err["data"] == "height 79 must be less than or equal to the current blockchain height 78"
        err = await _get(c, "/validators?height=abc", 500)
        assert err["code"] == -32602 and err["message"] == "Invalid params"

    _run(check)


def test_heights_not_reached_yet_are_refused_like_a_real_node() -> None:
    async def check(c: httpx.AsyncClient, srv: ReplayServer) -> None:
        status = await _get(c, "/status")
        assert status["sync_info"]["latest_block_height"] == "0" and status["sync_info"]["latest_block_hash"] == ""
        err = await _get(c, "/block?height=1", 500)
        assert err["data"] == "height 1 must be less than or equal to the current blockchain height 0"
        assert (await _get(c, "/commit?height=0", 500))["data"] == "height must be greater than 0, but got 0"
        assert (await _get(c, "/validators"))["block_height"] == "1"

    _run(check, finished=False)


def test_dropped_validator_is_absent_from_commits() -> None:
    async def check(c: httpx.AsyncClient, srv: ReplayServer) -> None:
        for h in (2, 40, 76):
            sigs = (await _get(c, f"/commit?height={h}"))["signed_header"]["commit"]["signatures"]
            dropped = [s for s in sigs if s["block_id_flag"] == 1]
            assert dropped == [
                {"block_id_flag": 1, "validator_address": "", "timestamp": "0001-01-01T00:00:00Z", "signature": None}
            ]
            assert sorted(s["validator_address"] for s in sigs if s["block_id_flag"] == 2) == sorted(
                v.address for v in srv.timeline.validators if v.address != DROPPED
            )
            last = (await _get(c, f"/block?height={h + 1}"))["block"]["last_commit"]["signatures"]
            assert last == sigs

    _run(check, node="node1", drop=DROPPED)


def test_validators_errors_on_demand_and_recovers() -> None:
    async def check(c: httpx.AsyncClient, srv: ReplayServer) -> None:
        err = await _get(c, "/validators", 500)
        assert err["code"] == -32603 and "fails on purpose" in err["data"]
        r = await c.post("/", json={"jsonrpc": "2.0", "id": 3, "method": "validators", "params": {}})
        assert r.json()["error"]["code"] == -32603
        assert (await _get(c, "/status"))["sync_info"]["latest_block_height"] == "77"  # the rest still answers
        srv.fail.discard("validators")
        assert (await _get(c, "/validators"))["total"] == "4"

    _run(check, fail={"validators"})


def test_json_rpc_post() -> None:
    async def check(c: httpx.AsyncClient, srv: ReplayServer) -> None:
        r = await c.post("/", json={"jsonrpc": "2.0", "id": "a", "method": "block", "params": {"height": "5"}})
        assert r.json()["id"] == "a" and r.json()["result"]["block"]["header"]["height"] == "5"
        batch = [{"jsonrpc": "2.0", "id": i, "method": m, "params": {}} for i, m in enumerate(("status", "nope"))]
        first, second = (await c.post("/", json=batch)).json()
        assert first["result"]["node_info"]["network"] == "chain-H5iqVd"
        assert second["error"] == {"code": -32601, "message": "Method not found", "data": ""}
        assert (await c.post("/", content=b"{oops")).json()["error"]["code"] == -32700
        too_big = await c.post("/", content=b" " * (2 * 1024 * 1024))
        assert too_big.status_code == 413 and too_big.json()["error"]["data"] == "body too large"

    _run(check)
