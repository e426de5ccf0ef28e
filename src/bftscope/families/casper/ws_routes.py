"""The seed's WebSocket routes (live-sources.md §C1): ``/blocks``, ``/block/{hash}``, ``/deploy/{hash}``,
``/accountDeploys/{account}``, under ``/v1/casper/{network}/`` and — for the root network
(``BFTSCOPE_CASPER_ROOT_NETWORK``), public as in the seed — at the root.

Each new entity of the route's channel is sent as the seed's REST JSON, one text frame per entity (the seed's
payload); a client receives its own channel's entities and nothing else. A client may send a filter message,
``{"filter": {"types": [...], "era": N, "proposer": "…", "account": "…"}}``, answered with
``{"filter": {…}}`` (the filter now in force) or, when malformed, with an error frame ``{"error": message,
"code": "invalid_input"}`` that leaves the connection and its filter as they were.

``/v1/casper/…`` authenticates as the CometBFT feed does (``bftscope.api.routes.feed``): the token in the
``Authorization`` header or the subprotocol ``bearer.<token>``, checked before the handshake is accepted,
and the caller must own the network (or be an admin); a refusal closes the handshake with 1008. More than
``BFTSCOPE_CASPER_MAX_SUBSCRIBERS`` clients of a network are refused with 1013, and a client that falls
``BFTSCOPE_CASPER_SUBSCRIBER_QUEUE`` entities behind is closed with 1013.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import orjson
from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from starlette.concurrency import run_in_threadpool

from bftscope.api.auth import MISSING, authenticate
from bftscope.api.context import ApiContext
from bftscope.api.routes.feed import ws_headers
from bftscope.errors import BftscopeError, BusyError, InputError, UnauthorizedError
from bftscope.families.casper import serving
from bftscope.families.casper.hub import Client, Hub
from bftscope.families.casper.subfilter import parse_message

__all__ = ["PROTOCOL", "router"]

router = APIRouter()

PROTOCOL = "bftscope.casper"
_KEY = re.compile(r"^[A-Za-z0-9_-]{1,200}$")  # a hash or public key (the seed's test data has "deploy1_…")


async def _network(ws: WebSocket, c: ApiContext, network: str | None) -> str:
    if network is None:
        return serving.root_network(c)
    who = await authenticate(c, ws_headers(ws))
    if who is None:
        raise UnauthorizedError(MISSING)
    return await run_in_threadpool(serving.owned_network, c, who, network)


async def _serve(ws: WebSocket, network: str | None, channel: str, key: str | None = None) -> None:
    c: ApiContext = ws.app.state.ctx
    try:
        if key is not None and not _KEY.match(key):
            raise InputError("a hash or key: 1–200 letters, digits, '_' or '-'")
        name = await _network(ws, c, network)
        hub = serving.hub_for(c, name)
        if hub.stats.ws_clients >= c.settings.casper_max_subscribers:
            raise BusyError("server has reached limit of subscribers")
    except BftscopeError as exc:
        await ws.close(code=1013 if isinstance(exc, BusyError) else 1008, reason=exc.message[:120])
        return
    client = hub.add_ws(channel if key is None else f"{channel}:{key}")
    try:
        await ws.accept(subprotocol=PROTOCOL if PROTOCOL in ws.scope.get("subprotocols", []) else None)
        await _pump(ws, hub, client)
    except WebSocketDisconnect:
        pass  # the client left while it was being sent to: its end, not the server's error
    finally:
        hub.remove(client)


async def _pump(ws: WebSocket, hub: Hub, client: Client) -> None:
    """Send the client's entities until it leaves or falls behind; read its filter messages meanwhile."""
    sending = asyncio.Lock()
    reader = asyncio.create_task(_read(ws, client, sending))
    try:
        while True:
            take = asyncio.create_task(client.take())
            done, _ = await asyncio.wait({take, reader}, return_when=asyncio.FIRST_COMPLETED)
            if reader in done:
                take.cancel()
                return
            batch = take.result()
            if batch is None:
                if client.cut:
                    await ws.close(code=1013, reason=f"too slow: more than {client.queue_size} messages behind")
                return
            async with sending:
                for e in batch:
                    await ws.send_text(bytes(e.seed).decode())
            client.sent += len(batch)
    finally:
        reader.cancel()
        # its own cancellation is a result here; this task's (a server shutting down) still propagates
        await asyncio.gather(reader, return_exceptions=True)


async def _read(ws: WebSocket, client: Client, sending: asyncio.Lock) -> None:
    """Until the client disconnects: each message is a filter (applied at once) or an error frame."""
    while True:
        message = await ws.receive()
        if message["type"] == "websocket.disconnect":
            return
        text = message.get("text") if message.get("text") is not None else message.get("bytes")
        try:
            client.filter = parse_message(text or b"")
            reply: dict[str, Any] = {"filter": client.filter.as_json()}
        except InputError as exc:
            reply = {"error": exc.message, "code": exc.code}
        async with sending:
            await ws.send_text(orjson.dumps(reply).decode())


# --- the routes: under /v1/casper/{network}/ and at the root -----------------------------------------
@router.websocket("/v1/casper/{network}/blocks")
async def blocks(ws: WebSocket, network: str) -> None:
    await _serve(ws, network, "blocks")


@router.websocket("/v1/casper/{network}/block/{block_hash}")
async def block(ws: WebSocket, network: str, block_hash: str) -> None:
    await _serve(ws, network, "block", block_hash)


@router.websocket("/v1/casper/{network}/deploy/{deploy_hash}")
async def deploy(ws: WebSocket, network: str, deploy_hash: str) -> None:
    await _serve(ws, network, "deploy", deploy_hash)


@router.websocket("/v1/casper/{network}/accountDeploys/{account}")
async def account_deploys(ws: WebSocket, network: str, account: str) -> None:
    await _serve(ws, network, "accountDeploys", account)


@router.websocket("/blocks")
async def root_blocks(ws: WebSocket) -> None:
    await _serve(ws, None, "blocks")


@router.websocket("/block/{block_hash}")
async def root_block(ws: WebSocket, block_hash: str) -> None:
    await _serve(ws, None, "block", block_hash)


@router.websocket("/deploy/{deploy_hash}")
async def root_deploy(ws: WebSocket, deploy_hash: str) -> None:
    await _serve(ws, None, "deploy", deploy_hash)


@router.websocket("/accountDeploys/{account}")
async def root_account_deploys(ws: WebSocket, account: str) -> None:
    await _serve(ws, None, "accountDeploys", account)
