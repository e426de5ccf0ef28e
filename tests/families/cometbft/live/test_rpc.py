"""The RPC client against a fake node on 127.0.0.1: every page of /validators (no cap at 400), a page error or a
short set never gives a set, typed and counted errors, and the recorded /validators, /commit, /status answers."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bftscope.families.cometbft.live.rpc import RpcClient, RpcError
from tests.conftest import require_data
from tests.families.cometbft.live.fakenode import Chain, FakeNode, serving, wal_chain


@pytest.fixture
def chain() -> Chain:
    return wal_chain(require_data("cometbft/tendermint-v0.34-4node-wal") / "node0" / "data" / "cs.wal" / "wal")


def test_validators_reads_every_page_past_400(chain: Chain) -> None:
    many = [{"address": f"{i:040X}", "voting_power": str(1000 - i)} for i in range(437)]
    node = FakeNode(dataclasses.replace(chain, validators=many))
    node.position = len(chain.frames)

    async def go(url: str) -> Any:
        rpc = RpcClient(url)
        try:
            return await rpc.validators(40), rpc.calls["validators"], dict(rpc.errors)
        finally:
            await rpc.aclose()

    with serving(node.app()) as url:
        vs, calls, errors = asyncio.run(go(url))
    assert vs.height == 40 and [v.address for v in vs.validators] == [v["address"] for v in many]
    assert [v.index for v in vs.validators] == list(range(437)) and vs.validators[5].power == 995
    assert calls == 5 and errors == {}  # 100 a page: 5 pages, stopped at the total


def _app(routes: dict[str, Any]) -> Starlette:
    def make(body: Any) -> Any:
        async def handler(request: Request) -> Any:
            return JSONResponse(body(request) if callable(body) else body)

        return handler

    return Starlette(routes=[Route(f"/{name}", make(body)) for name, body in routes.items()])


def _recorded(relative: str) -> Any:
    return json.loads(require_data(f"tendermint-rpc/{relative}").read_text())


def test_recorded_answers_and_typed_errors() -> None:
    validators = _recorded("tendermint-rs_legacy_support/validators.json")
    status = _recorded("tendermint-rs_kvstore_v0_38/incoming/status.json")
    commit = _recorded("tendermint-rs_kvstore_v0_38/incoming/commit_at_height_10.json")
    malformed = _recorded("tendermint-rs_kvstore_v0_38/incoming/subscribe_malformed.json")
    total = str(len(validators["result"]["validators"]) + 1)
    short = {**validators, "result": {**validators["result"], "total": total}}  # one validator never arrives
    routes = {"validators": lambda r: short if r.query_params.get("height") == "7" else validators,
              "status": status, "commit": commit, "block": malformed}  # fmt: skip
    app = _app(routes)

    async def go(url: str) -> dict[str, Any]:
        rpc = RpcClient(url, timeout=2.0)
        out: dict[str, Any] = {"vs": await rpc.validators(), "status": await rpc.status()}
        out["commit"] = await rpc.commit(10)
        for name, call in (("short", rpc.validators(7)), ("block", rpc.block(3))):
            try:
                await call
            except RpcError as exc:
                out[name] = exc
        down = RpcClient("http://127.0.0.1:9", timeout=2.0)
        try:
            await down.status()
        except RpcError as exc:
            out["down"] = exc
        out["errors"] = dict(rpc.errors) | dict(down.errors)
        await rpc.aclose()
        await down.aclose()
        return out

    with serving(app) as url:
        out = asyncio.run(go(url))
    recorded = validators["result"]["validators"]
    assert out["vs"].height == 42 and len(out["vs"].validators) == len(recorded) == int(validators["result"]["total"])
    assert out["vs"].validators[2].proposer_priority == int(recorded[2]["proposer_priority"])
    assert out["status"].height == int(status["result"]["sync_info"]["latest_block_height"])
    assert out["status"].chain_id == "dockerchain" and out["commit"]["height"] == "10"
    assert out["short"].kind == "incomplete" and out["block"].kind == "rpc" and out["block"].rpc_code == -32603
    assert out["down"].kind == "unreachable"
    assert out["errors"] == {"validators incomplete": 1, "block rpc": 1, "status unreachable": 1}
