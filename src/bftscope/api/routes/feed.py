"""``WS /v1/networks/{networkId}/feed``: a followed network's events as they are written, filtered.

Query parameters: ``kinds`` (comma-separated event kinds), ``validator`` (hex address), ``from_height``.
Each message is a JSON list of rows (the event model's columns; null ones left out).

Authentication happens before the handshake is accepted, as for every other route: the token goes in the
``Authorization: Bearer`` header or — for browsers, which cannot set headers on a websocket — as the
subprotocol ``bearer.<token>`` offered beside ``bftscope.feed`` (the server answers ``bftscope.feed``).
Never in the URL, where proxies and access logs would keep it. A missing or unknown token, a network the
caller may not see (or that does not exist) and a bad filter all close the handshake with code 1008 and
the reason. A client that falls ``feed_queue_batches`` batches behind is closed with 1013; one whose
network stops being followed with 1001.
"""

from __future__ import annotations

import asyncio
import contextlib

import orjson
from fastapi import APIRouter, WebSocket
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers

from bftscope.api.auth import MISSING, authenticate
from bftscope.api.context import ApiContext
from bftscope.api.routes.networks import network_for
from bftscope.errors import BftscopeError, ConflictError, UnauthorizedError
from bftscope.families import registry
from bftscope.live.feed import FeedFilter, Subscription

router = APIRouter(prefix="/v1", tags=["networks"])

__all__ = ["PROTOCOL", "router", "ws_headers"]

PROTOCOL = "bftscope.feed"
_TOKEN_PROTOCOL = "bearer."
MAX_SUBSCRIBERS = 100  # per network


def ws_headers(ws: WebSocket) -> Headers:
    """The request's headers, with a ``bearer.<token>`` subprotocol turned into an Authorization header."""
    if "authorization" in ws.headers:
        return ws.headers
    for proto in ws.scope.get("subprotocols", []):
        if proto.startswith(_TOKEN_PROTOCOL):
            return Headers({"authorization": f"Bearer {proto[len(_TOKEN_PROTOCOL) :]}"})
    return ws.headers


async def _subscribe(ws: WebSocket, c: ApiContext, network_id: str) -> Subscription:
    who = await authenticate(c, ws_headers(ws))
    if who is None:
        raise UnauthorizedError(MISSING)
    net = await run_in_threadpool(network_for, c, who, network_id)
    q = ws.query_params
    flt = FeedFilter.parse(q.get("kinds"), q.get("validator"), q.get("from_height"), registry.all_kinds())
    entry = c.networks.get(net.id) if c.networks is not None else None
    if entry is None:
        raise ConflictError("the network is not being followed")
    if len(entry.feed.subscribers) >= MAX_SUBSCRIBERS:
        raise ConflictError(f"the network's feed has {MAX_SUBSCRIBERS} clients already")
    return entry.feed.subscribe(flt)


@router.websocket("/networks/{networkId}/feed")
async def feed(ws: WebSocket, networkId: str) -> None:
    c: ApiContext = ws.app.state.ctx
    try:
        sub = await _subscribe(ws, c, networkId)
    except BftscopeError as exc:
        await ws.close(code=1008, reason=exc.message[:120])
        return
    entry = c.networks.get(networkId) if c.networks is not None else None
    try:
        await ws.accept(subprotocol=PROTOCOL if PROTOCOL in ws.scope.get("subprotocols", []) else None)
        await _pump(ws, sub, c.settings.feed_queue_batches)
    finally:
        if entry is not None:
            entry.feed.unsubscribe(sub)


async def _pump(ws: WebSocket, sub: Subscription, limit: int) -> None:
    """Send batches until the client leaves, falls behind or the network stops."""
    gone = asyncio.create_task(_until_disconnect(ws))
    try:
        while True:
            batch_task = asyncio.create_task(sub.next())
            done, _ = await asyncio.wait({batch_task, gone}, return_when=asyncio.FIRST_COMPLETED)
            if gone in done:
                batch_task.cancel()
                return
            batch = batch_task.result()
            if batch is None:
                if sub.overflowed:
                    await ws.close(code=1013, reason=f"too slow: more than {limit} batches behind")
                else:
                    await ws.close(code=1001, reason="the network is no longer followed")
                return
            await ws.send_text(orjson.dumps(batch).decode())
    finally:
        gone.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await gone


async def _until_disconnect(ws: WebSocket) -> None:
    while True:
        message = await ws.receive()
        if message["type"] == "websocket.disconnect":
            return
