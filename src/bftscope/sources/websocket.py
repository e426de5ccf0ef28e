"""A websocket transport (the ``websockets`` package): each message is one frame.

Used by subscriptions that speak JSON over a websocket (CometBFT RPC ``/websocket``, Substrate telemetry):
``subscribe`` messages are sent after every connect, because a server forgets subscriptions with the
connection. A close in order (code 1000/1001) is :class:`TransportClosed`, anything else
:class:`TransportError`; both make a live runner reconnect.
"""

from __future__ import annotations

from collections.abc import Sequence

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosedOK, WebSocketException

from bftscope.errors import TransportClosed, TransportError
from bftscope.sources.base import Frame, Transport

__all__ = ["WebSocketTransport"]


class WebSocketTransport(Transport):
    def __init__(
        self,
        url: str,
        *,
        subscribe: Sequence[str | bytes] = (),
        open_timeout: float = 10.0,
        close_timeout: float = 10.0,
        max_size: int = 16 * 1024 * 1024,
        name: str = "websocket",
    ) -> None:
        self.url = url
        self.name = name
        self._subscribe = list(subscribe)
        self._open_timeout = open_timeout
        self._close_timeout = close_timeout  # a peer that never answers our close costs at most this
        self._max_size = max_size
        self._ws: ClientConnection | None = None

    async def open(self, resume_from: str | None = None) -> None:
        # A websocket has no standard resume position; a family that has one puts it in ``subscribe``.
        await self.close()
        try:
            self._ws = await connect(self.url, open_timeout=self._open_timeout, close_timeout=self._close_timeout,
                                     max_size=self._max_size)  # fmt: skip
            for message in self._subscribe:
                await self._ws.send(message)
        except (OSError, TimeoutError, WebSocketException) as exc:
            await self.close()
            raise TransportError(f"cannot connect to {self.url}: {type(exc).__name__}: {exc}") from exc

    async def receive(self) -> Frame:
        if self._ws is None:
            raise TransportError("not open")
        try:
            message = await self._ws.recv()
        except ConnectionClosedOK as exc:
            raise TransportClosed(f"{self.url} closed the connection ({exc})") from exc
        except (OSError, WebSocketException) as exc:
            raise TransportError(f"{self.url}: {type(exc).__name__}: {exc}") from exc
        return Frame(message.encode() if isinstance(message, str) else message)

    async def close(self) -> None:
        ws, self._ws = self._ws, None
        if ws is not None:
            await ws.close()
