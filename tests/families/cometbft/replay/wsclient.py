"""The test's own CometBFT websocket client (``websockets``) and a JSON shape comparison for the replay tests."""

from __future__ import annotations

import json
from typing import Any

from websockets.asyncio.client import ClientConnection

KINDS = ("NewRound", "NewRoundStep", "Vote", "NewBlock", "CompleteProposal")


async def request(
    ws: ClientConnection, id_: Any, method: str, events: list[dict[str, Any]] | None = None, **params: Any
) -> dict[str, Any]:
    """Send a request and return its response. Event frames that arrive first go to ``events`` (without it, an
    event frame instead of the response fails the test)."""
    await ws.send(json.dumps({"jsonrpc": "2.0", "id": id_, "method": method, "params": params}))
    while True:
        reply: dict[str, Any] = json.loads(await ws.recv())
        if events is not None and "query" in reply.get("result", {}):
            events.append(reply)
            continue
        assert reply["id"] == id_, reply
        return reply


async def subscribe(
    ws: ClientConnection, kinds: tuple[str, ...] = KINDS, events: list[dict[str, Any]] | None = None
) -> dict[str, int]:
    """Subscribe to each kind (request id = its position); returns kind → id. Events of the kinds already
    subscribed that arrive meanwhile go to ``events``."""
    ids = {}
    for i, kind in enumerate(kinds):
        reply = await request(ws, i, "subscribe", events, query=f"tm.event='{kind}'")
        assert reply == {"jsonrpc": "2.0", "id": i, "result": {}}
        ids[kind] = i
    return ids


async def frames_until_marker(ws: ClientConnection) -> list[dict[str, Any]]:
    """Every frame up to the answer to a marker request (the server writes a connection's frames in order)."""
    await ws.send(json.dumps({"jsonrpc": "2.0", "id": "marker", "method": "health", "params": {}}))
    out = []
    while True:
        frame = json.loads(await ws.recv())
        if frame.get("id") == "marker":
            return out
        out.append(frame)


def vote_key(frame: dict[str, Any]) -> tuple[int, int, int, str]:
    v = frame["result"]["data"]["value"]["Vote"]
    return int(v["height"]), v["round"], v["type"], v["validator_address"]


def _kind(x: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "bool", int: "number", float: "number"}.get(
        type(x), "null"
    )


def shape_diff(ours: Any, recorded: Any, path: str = "$") -> list[str]:
    """Where two JSON values differ in shape: key sets of objects, JSON types of values (arrays compared by their
    first items when both have one)."""
    if _kind(ours) != _kind(recorded):
        return [f"{path}: {_kind(ours)} vs recorded {_kind(recorded)}"]
    if isinstance(ours, dict):
        diffs = []
        if set(ours) != set(recorded):
            diffs.append(f"{path}: keys {sorted(set(ours) ^ set(recorded))} differ")
        for k in set(ours) & set(recorded):
            diffs += shape_diff(ours[k], recorded[k], f"{path}.{k}")
        return diffs
    if isinstance(ours, list) and ours and recorded:
        return shape_diff(ours[0], recorded[0], f"{path}[0]")
    return []
