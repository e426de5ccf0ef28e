"""One websocket client of the replay node: its subscriptions, its outgoing queue and its requests.

As in CometBFT: at most 5 subscriptions per client, ``subscribe`` acknowledged with ``{"result":{}}`` and every
event frame carrying the subscribe request's id and query; errors are JSON-RPC errors (-32603 "Internal error"
with the reason in ``data``). A client whose queue of unsent frames overflows is disconnected (CometBFT's
``close_on_slow_client``) rather than silently losing events.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

import orjson
from starlette.websockets import WebSocket, WebSocketDisconnect

from bftscope.families.cometbft.replay.methods import INTERNAL, RPCError, error_body
from bftscope.families.cometbft.replay.query import QueryError, event_kind

if TYPE_CHECKING:
    from bftscope.families.cometbft.replay.server import ReplayServer

__all__ = ["MAX_MESSAGE_BYTES", "MAX_QUEUED_FRAMES", "MAX_SUBSCRIPTIONS", "Connection"]

MAX_SUBSCRIPTIONS = 5  # max_subscriptions_per_client
MAX_QUEUED_FRAMES = 10_000
MAX_MESSAGE_BYTES = 1024 * 1024
_SLOW = "subscription was cancelled (reason: client is not pulling messages fast enough)"


class Connection:
    def __init__(self, ws: WebSocket, server: ReplayServer) -> None:
        self.ws = ws
        self.server = server
        self.subs: dict[str, tuple[str, bytes]] = {}  # query → (event kind, request id as JSON)
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue(MAX_QUEUED_FRAMES)
        self.closed = False

    def wants(self, kind: str) -> bool:
        return not self.closed and any(k == kind for k, _ in self.subs.values())

    def push_event(self, kind: str, data: bytes) -> None:
        for query, (k, id_json) in self.subs.items():
            if k != kind:
                continue
            frame = b"".join((
                b'{"jsonrpc":"2.0","id":', id_json, b',"result":{"query":', orjson.dumps(query), b',"data":', data,
                b',"events":{"tm.event":["', kind.encode(), b'"]}}}',
            ))  # fmt: skip
            self._put(frame)

    def _put(self, frame: bytes) -> None:
        if self.closed:
            return
        try:
            self.queue.put_nowait(frame)
        except asyncio.QueueFull:
            self.server.stats["slow_clients_closed"] += 1
            asyncio.get_running_loop().create_task(self.close(1011, _SLOW[:120]))

    def _reply(self, body: dict[str, Any]) -> None:
        self._put(orjson.dumps(body))

    async def close(self, code: int, reason: str) -> None:
        if self.closed:
            return
        self.closed = True
        self.subs.clear()
        with contextlib.suppress(asyncio.QueueFull):
            self.queue.put_nowait(None)
        with contextlib.suppress(Exception):
            await self.ws.close(code, reason)

    async def run(self) -> None:
        writer = asyncio.get_running_loop().create_task(self._write())
        try:
            while not self.closed:
                msg = await self.ws.receive()
                if msg["type"] == "websocket.disconnect":
                    break
                raw = msg.get("text") if msg.get("text") is not None else msg.get("bytes")
                if raw is None:
                    continue
                if len(raw) > MAX_MESSAGE_BYTES:
                    self._reply(error_body(None, -32600, "Invalid Request", "message too large"))
                    continue
                self.handle(raw)
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            self.closed = True
            self.subs.clear()
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer

    async def _write(self) -> None:
        while True:
            frame = await self.queue.get()
            if frame is None:
                return
            try:
                await self.ws.send_text(frame.decode())
            except (WebSocketDisconnect, RuntimeError, OSError):
                self.closed = True
                return
            self.server.stats["frames_sent"] += 1

    def handle(self, raw: str | bytes) -> None:
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            self._reply(error_body(None, -32700, "Parse error", f"error unmarshaling request: {exc}"))
            return
        method = doc.get("method") if isinstance(doc, dict) else None
        if method not in ("subscribe", "unsubscribe", "unsubscribe_all"):
            self._reply(self.server.handle_request(doc))
            return
        assert isinstance(doc, dict)
        id_ = doc.get("id")
        params = doc.get("params") or {}
        try:
            if method == "unsubscribe_all":
                if not self.subs:
                    raise RPCError(INTERNAL, "subscription not found")
                self.subs.clear()
            else:
                query = params.get("query") if isinstance(params, dict) else None
                if not isinstance(query, str):
                    raise RPCError(-32602, "error converting json params to arguments: query: expected a string")
                if method == "subscribe":
                    self.subscribe(query, id_)
                elif self.subs.pop(query, None) is None:
                    raise RPCError(INTERNAL, "subscription not found")
        except RPCError as exc:
            self._reply(error_body(id_, exc.code, exc.message, exc.data))
            return
        self._reply({"jsonrpc": "2.0", "id": id_, "result": {}})

    def subscribe(self, query: str, id_: Any) -> None:
        if len(self.subs) >= MAX_SUBSCRIPTIONS:
            raise RPCError(INTERNAL, f"max_subscriptions_per_client {MAX_SUBSCRIPTIONS} reached")
        try:
            kind = event_kind(query)
        except QueryError as exc:
            raise RPCError(INTERNAL, str(exc)) from None
        if query in self.subs:
            raise RPCError(INTERNAL, "already subscribed")
        self.subs[query] = (kind, orjson.dumps(id_))
        if self.server.start_on_subscribe:
            self.server.start()
