"""The replay node's server: CometBFT's RPC over HTTP (GET ``/<method>?…``, JSON-RPC POST ``/``) and the
websocket ``/websocket`` (``subscribe``/``unsubscribe``/``unsubscribe_all`` and every HTTP method), on Starlette
and uvicorn. Embeddable in-process::

    async with ReplayServer(timeline, speed=100) as srv:
        ...  # srv.url (http://127.0.0.1:PORT), srv.ws_url (ws://…/websocket)

``loop=True`` plays the recording again and again with growing heights (:mod:`…replay.laps`);
``autostart=False`` holds the clock until :meth:`ReplayServer.start` (or, with ``start_on_subscribe``, the first
``subscribe``); ``fail`` names methods that answer with an internal error (mutable at run time: ``srv.fail``).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.websockets import WebSocket

from bftscope.families.cometbft.replay.frames import event_data
from bftscope.families.cometbft.replay.methods import METHODS, RPCError, call, error_body
from bftscope.families.cometbft.replay.model import Event
from bftscope.families.cometbft.replay.player import Player
from bftscope.families.cometbft.replay.recording import read_recording
from bftscope.families.cometbft.replay.timeline import Timeline, build_timeline
from bftscope.families.cometbft.replay.wsconn import MAX_MESSAGE_BYTES, Connection

__all__ = ["ReplayServer"]

_MAX_BODY = 1024 * 1024
_URI_ID = -1  # CometBFT answers a GET with this JSON-RPC id


def _response(body: dict[str, Any], status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def rpc_error(id_: Any, exc: RPCError) -> dict[str, Any]:
    return error_body(id_, exc.code, exc.message, exc.data)


class ReplayServer:
    def __init__(
        self,
        timeline: Timeline,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        speed: float = 1.0,
        loop: bool = False,
        autostart: bool = True,
        start_on_subscribe: bool = False,
        fail: Iterable[str] = (),
        ping_interval: float = 27.0,
        max_connections: int = 900,
    ) -> None:
        unknown = set(fail) - set(METHODS)
        if unknown:
            raise ValueError(f"cannot fail unknown method(s) {', '.join(sorted(unknown))}; known: {', '.join(METHODS)}")
        self.timeline = timeline
        self.host, self.port = host, port
        self.speed = speed
        self.loop = loop
        self.autostart = autostart
        self.start_on_subscribe = start_on_subscribe
        self.fail: set[str] = set(fail)
        self.ping_interval = ping_interval
        self.max_connections = max_connections
        self.player: Player | None = None
        self.connections: set[Connection] = set()
        self.stats = {"connections": 0, "http_requests": 0, "frames_sent": 0, "slow_clients_closed": 0}
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self._sock: socket.socket | None = None

    @classmethod
    def from_paths(
        cls, paths: list[Path], node: str | None = None, *, drop_validator: str | None = None, **kwargs: Any
    ) -> ReplayServer:
        """A server for one node of a recording (what ``bftscope replay`` serves); ``kwargs`` as for the class."""
        recording = read_recording(paths, node)
        return cls(build_timeline(recording, drop_validator=drop_validator), **kwargs)

    # -- lifecycle
    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}/websocket"

    async def __aenter__(self) -> ReplayServer:
        self.player = Player(self.timeline, speed=self.speed, loop=self.loop)
        self.player.add_listener(self._on_event)
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # accepted sockets inherit it: no Nagle delay
        try:
            sock.bind((self.host, self.port))
        except OSError:
            sock.close()
            raise
        self.port = sock.getsockname()[1]
        self._sock = sock
        config = uvicorn.Config(
            self.app(), log_level="critical", lifespan="off", ws_ping_interval=self.ping_interval,
            ws_ping_timeout=self.ping_interval, limit_concurrency=self.max_connections, log_config=None,
            ws_max_size=MAX_MESSAGE_BYTES,
        )  # fmt: skip
        self._server = uvicorn.Server(config)
        self._task = asyncio.get_running_loop().create_task(self._server.serve(sockets=[sock]))
        while not self._server.started:
            if self._task.done():
                self._task.result()  # raises why it could not start
                raise RuntimeError("replay server stopped while starting")
            await asyncio.sleep(0.01)
        if self.autostart:
            self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def start(self) -> None:
        """Start the replay clock (idempotent)."""
        assert self.player is not None, "use ReplayServer inside 'async with'"
        self.player.start()

    async def close(self) -> None:
        if self.player is not None:
            await self.player.stop()
        for conn in list(self.connections):
            await conn.close(1001, "replay server shutting down")
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._sock is not None:
            self._sock.close()

    async def serve_until_closed(self) -> None:
        """Wait until the server task ends (Ctrl-C, or :meth:`close`)."""
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(self._task)

    async def cut_connections(self) -> int:
        """Close every websocket connection (as a node restart would); returns how many there were."""
        conns = list(self.connections)
        for conn in conns:
            await conn.close(1012, "replay server cut the connection")
        return len(conns)

    # -- events to connections
    def _on_event(self, e: Event) -> None:
        if not self.connections:
            return
        kind = e.kind
        wanted = [c for c in self.connections if c.wants(kind)]
        if not wanted:
            return
        block = self.player.block(e.height) if e.kind == "NewBlock" and self.player is not None else None
        data = orjson.dumps(event_data(self.timeline, e, block))
        for conn in wanted:
            conn.push_event(kind, data)

    # -- HTTP
    def app(self) -> Starlette:
        routes: list[BaseRoute] = [Route("/", self._post, methods=["POST"]), Route("/", self._index, methods=["GET"])]
        routes += [Route(f"/{name}", self._get, methods=["GET"]) for name in METHODS]
        routes.append(WebSocketRoute("/websocket", self._websocket))
        return Starlette(routes=routes)

    def call(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        assert self.player is not None
        self.stats["http_requests"] += 1
        return call(self.player, method, params, self.fail)

    async def _index(self, request: Request) -> Response:
        lines = "\n".join(f"//{request.url.netloc}/{m}" for m in METHODS)
        return Response(f"Available endpoints:\n{lines}\n//{request.url.netloc}/websocket\n", media_type="text/plain")

    async def _get(self, request: Request) -> Response:
        method = request.url.path.strip("/")
        try:
            result = self.call(method, dict(request.query_params))
        except RPCError as exc:
            return _response(rpc_error(_URI_ID, exc), 500)
        return _response({"jsonrpc": "2.0", "id": _URI_ID, "result": result})

    async def _post(self, request: Request) -> Response:
        chunks, size = [], 0
        async for chunk in request.stream():  # read no more than the limit, whatever the client sends
            size += len(chunk)
            if size > _MAX_BODY:
                return _response(error_body(None, -32600, "Invalid Request", "body too large"), 413)
            chunks.append(chunk)
        body = b"".join(chunks)
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            return _response(error_body(None, -32700, "Parse error", str(exc)))
        if isinstance(doc, list):
            return Response(orjson.dumps([self.handle_request(d) for d in doc]), media_type="application/json")
        return _response(self.handle_request(doc))

    def handle_request(self, doc: Any) -> dict[str, Any]:
        """One JSON-RPC request (HTTP POST or websocket, not the websocket-only methods) → its response."""
        if not isinstance(doc, dict) or not isinstance(doc.get("method"), str):
            id_ = doc.get("id") if isinstance(doc, dict) else None
            return error_body(id_, -32600, "Invalid Request", "not a JSON-RPC request")
        id_ = doc.get("id")
        params = doc.get("params") or {}
        if not isinstance(params, dict):
            exc = RPCError(-32602, "error converting json params to arguments: params must be an object")
            return rpc_error(id_, exc)
        try:
            return {"jsonrpc": "2.0", "id": id_, "result": self.call(doc["method"], params)}
        except RPCError as exc:
            return rpc_error(id_, exc)

    async def _websocket(self, ws: WebSocket) -> None:
        await ws.accept()
        conn = Connection(ws, self)
        self.connections.add(conn)
        self.stats["connections"] += 1
        try:
            await conn.run()
        finally:
            self.connections.discard(conn)
