"""A small fake CometBFT RPC node on 127.0.0.1 for the follower's tests: websocket ``/websocket`` (subscribe,
acks, event frames) and HTTP ``/status``, ``/validators``, ``/block``, ``/commit``, serving a chain built from the
real v0.34 4-node testnet's WAL (node0) as §E frames.

The node has one timeline shared by its connections, as a real node has: every frame sent moves it on, so a
frame sent while no client listens is lost to the client. Knobs for the tests: ``cuts`` (frame positions before
which the server drops the connection, each once), ``skip_on_reconnect`` (frames the chain moves on while a
client is away), ``silent_at`` (stop sending, keep the socket open), ``max_subscriptions`` (refuse more, as
CometBFT's ``max_subscriptions_per_client``), ``validators_error`` (``/validators`` answers -32603), ``down``
(refuse websocket connections), ``drop`` (frames never sent, as a node's full subscriber buffer drops them).
"""

from __future__ import annotations

import asyncio
import functools
import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from bftscope.families.cometbft.parse.wal import WalFormat
from bftscope.ingest.parsereport import ParseReport
from bftscope.timeutil import format_ns

_STEP_NAMES = {
    "new_height": "RoundStepNewHeight", "propose": "RoundStepPropose", "prevote": "RoundStepPrevote",
    "prevote_wait": "RoundStepPrevoteWait", "precommit": "RoundStepPrecommit",
    "precommit_wait": "RoundStepPrecommitWait", "commit": "RoundStepCommit", "new_round": "RoundStepNewRound",
}  # fmt: skip


@dataclass
class Chain:
    frames: list[tuple[str, dict[str, Any]]]  # (event kind, result.data value)
    block_at: dict[int, int]  # height → index of its NewBlock frame
    blocks: dict[int, dict[str, Any]]  # height → /block result
    commits: dict[int, dict[str, Any]]  # height → commit
    validators: list[dict[str, Any]]  # in set order
    votes: set[tuple[int, int, str, str]] = field(default_factory=set)  # (height, round, type, validator)

    def latest(self, position: int) -> int:
        """The last height whose NewBlock lies before ``position``."""
        done = [h for h, i in self.block_at.items() if i < position]
        return max(done, default=0)


def _vote_value(row: dict[str, Any]) -> dict[str, Any]:
    vtype = 1 if row["vote_type"] == "prevote" else 2
    return {"Vote": {"type": vtype, "height": str(row["height"]), "round": row["round"],
                     "block_id": {"hash": row["block_hash"] or "", "parts": {"total": 1 if row["block_hash"] else 0,
                                                                            "hash": ""}},
                     "timestamp": format_ns(row["signer_ts"]), "validator_address": row["validator"],
                     "validator_index": row["validator_index"], "signature": "c2ln"}}  # fmt: skip


@functools.cache
def wal_chain(wal: Path) -> Chain:
    """A node's WAL as the events its RPC would have sent: each vote once, steps, complete proposals, blocks."""
    with wal.open("rb") as f:
        rows = pa.concat_tables(list(WalFormat().parse(f, ParseReport()))).to_pylist()
    genesis = json.loads((wal.parents[2] / "config" / "genesis.json").read_text())
    by_index: dict[int, str] = {}
    for r in rows:
        if r["msg_type"] == "vote":
            by_index[r["validator_index"]] = r["validator"]
    power = {v["address"]: int(v["power"]) for v in genesis["validators"]}
    validators = [{"address": by_index[i], "voting_power": str(power[by_index[i]])} for i in sorted(by_index)]
    frames: list[tuple[str, dict[str, Any]]] = []
    chain = Chain(frames, {}, {}, {}, validators)
    precommits: dict[tuple[int, int], dict[str, dict[str, Any]]] = {}
    commit_round: dict[int, int] = {}
    complete: dict[tuple[int, int], str] = {}
    for r in rows:
        h, rnd = r["height"], r["round"]
        if r["kind"] == "step":
            if r["step"] == "commit":
                commit_round[h] = rnd
            if r["step"] == "new_round":
                frames.append(("NewRound", {"height": str(h), "round": rnd, "step": "RoundStepNewRound",
                                            "proposer": {"address": "", "index": -1}}))  # fmt: skip
            frames.append(("NewRoundStep", {"height": str(h), "round": rnd, "step": _STEP_NAMES[r["step"]]}))
        elif r["kind"] == "block_complete":
            complete[(h, rnd)] = r["block_hash"]
            block_id = {"hash": r["block_hash"], "parts": {"total": 1}}
            frames.append(("CompleteProposal", {"height": str(h), "round": rnd, "step": "RoundStepPropose",
                                                "block_id": block_id}))  # fmt: skip
        elif r["msg_type"] == "vote" and r["kind"] in ("msg_received", "msg_internal"):
            key = (h, rnd, r["vote_type"], r["validator"])
            if key in chain.votes:
                continue
            chain.votes.add(key)
            if r["vote_type"] == "precommit":
                precommits.setdefault((h, rnd), {})[r["validator"]] = r
            frames.append(("Vote", _vote_value(r)))
        elif r["kind"] == "height_end" and h >= 1 and h in commit_round:
            rnd = commit_round[h]
            block_hash = complete.get((h, rnd), "")
            sigs = []
            for v in validators:
                pc = precommits.get((h, rnd), {}).get(v["address"])
                flag = 1 if pc is None else (2 if pc["block_hash"] == block_hash else 3)
                sigs.append({"block_id_flag": flag, "validator_address": v["address"] if pc else "",
                             "timestamp": format_ns(pc["signer_ts"]) if pc else "0001-01-01T00:00:00Z",
                             "signature": "c2ln" if pc else None})  # fmt: skip
            chain.commits[h] = {"height": str(h), "round": rnd, "block_id": {"hash": block_hash}, "signatures": sigs}
            header = {"height": str(h), "time": format_ns(r["ts"]), "proposer_address": validators[h % 4]["address"]}
            block = {"header": header, "data": {"txs": []}, "last_commit": chain.commits.get(h - 1)}
            chain.blocks[h] = {"block_id": {"hash": block_hash}, "block": block}
            chain.block_at[h] = len(frames)
            frames.append(("NewBlock", {"block": block, "block_id": {"hash": block_hash}}))
    return chain


def _rpc(result: Any, error: str | None = None) -> JSONResponse:
    if error is not None:
        doc = {"jsonrpc": "2.0", "id": -1, "error": {"code": -32603, "message": "Internal error", "data": error}}
        return JSONResponse(doc, status_code=500)
    return JSONResponse({"jsonrpc": "2.0", "id": -1, "result": result})


class FakeNode:
    def __init__(
        self,
        chain: Chain,
        *,
        cuts: tuple[int, ...] = (),
        skip_on_reconnect: int = 0,
        silent_at: int | None = None,
        max_subscriptions: int | None = None,
        validators_error: bool = False,
        down: bool = False,
        drop: tuple[int, int] | None = None,
    ) -> None:
        self.chain = chain
        self.position = 0
        self.cuts = set(cuts)
        self.skip_on_reconnect = skip_on_reconnect
        self.silent_at = silent_at
        self.max_subscriptions = max_subscriptions
        self.validators_error = validators_error
        self.down = down
        self.drop = drop  # (first, count): frames a slow subscriber loses without a disconnect
        self.connections = 0
        self.http_calls: list[str] = []

    @property
    def done(self) -> bool:
        return self.position >= len(self.chain.frames)

    async def websocket(self, ws: WebSocket) -> None:
        if self.down:
            await ws.close(code=1013)
            return
        await ws.accept()
        self.connections += 1
        if self.connections > 1:
            self.position = min(len(self.chain.frames), self.position + self.skip_on_reconnect)
        queries: dict[str, Any] = {}
        try:
            for _ in range(6):
                msg = json.loads(await asyncio.wait_for(ws.receive_text(), 5))
                kind = msg["params"]["query"].split("'")[1]
                if self.max_subscriptions is not None and len(queries) >= self.max_subscriptions:
                    err = {"code": -32603, "message": "Internal error",
                           "data": f"max_subscriptions_per_client {self.max_subscriptions} reached"}  # fmt: skip
                    await ws.send_text(json.dumps({"jsonrpc": "2.0", "id": msg["id"], "error": err}))
                    continue
                queries[kind] = (msg["id"], msg["params"]["query"])
                await ws.send_text(json.dumps({"jsonrpc": "2.0", "id": msg["id"], "result": {}}))
            gone = asyncio.ensure_future(ws.receive())  # the client's close, answered at once
            while self.position < len(self.chain.frames) and not gone.done():
                if self.position in self.cuts:
                    self.cuts.discard(self.position)
                    await ws.close(code=1011)
                    return
                if self.position == self.silent_at:
                    self.silent_at = None
                    await gone  # silent until the client goes
                    return
                kind, value = self.chain.frames[self.position]
                self.position += 1
                dropped = self.drop is not None and self.drop[0] <= self.position - 1 < sum(self.drop)
                if kind in queries and not dropped:
                    sub_id, query = queries[kind]
                    data_type = "RoundState" if kind == "NewRoundStep" else kind
                    result = {"query": query, "data": {"type": f"tendermint/event/{data_type}", "value": value},
                              "events": {"tm.event": [kind]}}  # fmt: skip
                    await ws.send_text(json.dumps({"jsonrpc": "2.0", "id": sub_id, "result": result}))
                await asyncio.sleep(0)
            await gone  # all sent (or the client left): a quiet live stream
        except (WebSocketDisconnect, RuntimeError):
            return

    async def status(self, request: Request) -> JSONResponse:
        self.http_calls.append("status")
        h = self.chain.latest(self.position)
        return _rpc({"node_info": {"id": "fa" * 20, "network": "chain-H5iqVd", "moniker": "node0"},
                     "sync_info": {"latest_block_height": str(h), "latest_block_time": "2023-04-13T10:11:38Z",
                                   "earliest_block_height": "1", "catching_up": False}})  # fmt: skip

    def _height(self, request: Request) -> tuple[int, str | None]:
        latest = self.chain.latest(self.position)
        h = int(request.query_params.get("height", latest))
        if h > latest:
            return h, f"height {h} must be less than or equal to the current blockchain height {latest}"
        return h, None

    async def block(self, request: Request) -> JSONResponse:
        self.http_calls.append("block")
        h, err = self._height(request)
        return _rpc(self.chain.blocks.get(h), err or (None if h in self.chain.blocks else f"no block {h}"))

    async def commit(self, request: Request) -> JSONResponse:
        self.http_calls.append("commit")
        h, err = self._height(request)
        commit = self.chain.commits.get(h)
        return _rpc({"signed_header": {"commit": commit}, "canonical": True}, err or (None if commit else "none"))

    async def validators(self, request: Request) -> JSONResponse:
        self.http_calls.append("validators")
        if self.validators_error:
            return _rpc(None, "validators unavailable (fake)")
        h, err = self._height(request)
        per_page = min(100, max(1, int(request.query_params.get("per_page", 30))))
        page = int(request.query_params.get("page", 1))
        vals = self.chain.validators
        pages = max(1, -(-len(vals) // per_page))
        if err or not 1 <= page <= pages:
            return _rpc(None, err or f"page should be within [1, {pages}] range, given {page}")
        chunk = [{**v, "proposer_priority": str(h % 7 - 3)} for v in vals[(page - 1) * per_page : page * per_page]]
        return _rpc({"block_height": str(h), "validators": chunk, "count": str(len(chunk)), "total": str(len(vals))})

    def app(self) -> Starlette:
        return Starlette(routes=[
            WebSocketRoute("/websocket", self.websocket), Route("/status", self.status), Route("/block", self.block),
            Route("/commit", self.commit), Route("/validators", self.validators),
        ])  # fmt: skip


@contextmanager
def serving(app: Any) -> Iterator[str]:
    """Serve ``app`` on a free 127.0.0.1 port in a thread; yields ``http://127.0.0.1:PORT``."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="critical", lifespan="off", ws_ping_interval=None))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        while not server.started:
            threading.Event().wait(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        server.force_exit = True
        thread.join(timeout=5)
        sock.close()


def keyed_duplicates(events: list[tuple[str, Any]]) -> dict[tuple[Any, ...], int]:
    """Rows a sink received more than once, by what makes a row the same observation (a gap row never is)."""
    from collections import Counter

    keys = Counter(
        (r["kind"], r.get("height"), r.get("round"), r.get("step"), r.get("vote_type"), r.get("validator_index"),
         r.get("validator") if r["kind"] != "commit_sig" else None)
        for _, r in events if r["kind"] != "observation_gap"
    )  # fmt: skip
    return {k: n for k, n in keys.items() if n > 1}
