"""A TCP proxy for tests that cuts connections: it forwards 127.0.0.1 connections to a target and aborts a
connection (both sides, as a reset) once it has carried a chosen number of bytes from the target to the client.

Where each cut falls is either given (``cuts=[n1, n2, …]``: the k-th connection is cut after ``nk`` bytes; later
connections pass untouched) or drawn from a seeded generator (``seed`` and ``min_bytes``..``max_bytes``, at most
``max_cuts`` cuts; after that, connections pass untouched). So a test can cut a replay 20 times at random, and
replay the same cuts with the same seed::

    async with ChaosProxy("127.0.0.1", target_port, seed=7, min_bytes=2_000, max_bytes=40_000, max_cuts=20) as px:
        url = f"ws://127.0.0.1:{px.port}/websocket"
        ...
        assert px.cut_count == 20

``cut_now()`` cuts every open connection at once. Counters: ``connections``, ``cut_count``, ``cut_at`` (the byte
count of each cut), ``bytes_down`` (target → client, all connections).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Sequence

__all__ = ["ChaosProxy"]

_CHUNK = 16 * 1024


class _Link:
    def __init__(self, proxy: ChaosProxy, client: asyncio.StreamWriter, upstream: asyncio.StreamWriter) -> None:
        self.proxy = proxy
        self.client = client
        self.upstream = upstream
        self.down = 0
        self.limit = proxy._next_limit()
        self.cut = False

    def abort(self) -> None:
        if self.cut:
            return
        self.cut = True
        for w in (self.client, self.upstream):
            w.transport.abort()


class ChaosProxy:
    def __init__(
        self,
        target_host: str,
        target_port: int,
        *,
        cuts: Sequence[int] | None = None,
        seed: int | None = None,
        min_bytes: int = 1_000,
        max_bytes: int = 50_000,
        max_cuts: int | None = None,
    ) -> None:
        if cuts is None and seed is None:
            raise ValueError("give the cut points (cuts=[…]) or a seed for random ones")
        if not 0 < min_bytes <= max_bytes:
            raise ValueError("need 0 < min_bytes <= max_bytes")
        self.target = (target_host, target_port)
        self.planned = list(cuts) if cuts is not None else None
        self.rng = random.Random(seed)
        self.min_bytes, self.max_bytes = min_bytes, max_bytes
        self.max_cuts = max_cuts
        self.port = 0
        self.connections = 0
        self.cut_count = 0
        self.cut_at: list[int] = []
        self.bytes_down = 0
        self._limits_given = 0
        self._links: set[_Link] = set()
        self._server: asyncio.Server | None = None
        self.down = False  # True: new connections are aborted at once, as a node that is down refuses them
        self.refused = 0

    def _next_limit(self) -> int | None:
        """Bytes (target → client) after which the next connection is cut; None: never."""
        k = self._limits_given
        self._limits_given += 1
        if self.planned is not None:
            return self.planned[k] if k < len(self.planned) else None
        if self.max_cuts is not None and k >= self.max_cuts:
            return None
        return self.rng.randint(self.min_bytes, self.max_bytes)

    @staticmethod
    def random_plan(seed: int, n: int, min_bytes: int = 1_000, max_bytes: int = 50_000) -> list[int]:
        """The cut points a proxy with this seed uses for its first ``n`` connections."""
        rng = random.Random(seed)
        return [rng.randint(min_bytes, max_bytes) for _ in range(n)]

    async def __aenter__(self) -> ChaosProxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        for link in list(self._links):
            link.abort()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def cut_now(self) -> int:
        """Abort every open connection; returns how many."""
        links = [link for link in self._links if not link.cut]
        for link in links:
            self._record_cut(link)
        return len(links)

    def _record_cut(self, link: _Link) -> None:
        if not link.cut:
            self.cut_count += 1
            self.cut_at.append(link.down)
            link.abort()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.down:
            self.refused += 1
            writer.transport.abort()
            return
        self.connections += 1
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        link = _Link(self, writer, up_writer)
        self._links.add(link)
        try:
            await asyncio.gather(self._pipe(reader, up_writer, link, down=False),
                                 self._pipe(up_reader, writer, link, down=True))  # fmt: skip
        finally:
            self._links.discard(link)
            link.abort()

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, link: _Link, *, down: bool) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError, ConnectionError):
            while not link.cut:
                data = await src.read(_CHUNK)
                if not data:
                    break
                if down and link.limit is not None and link.down + len(data) >= link.limit:
                    keep = link.limit - link.down
                    dst.write(data[:keep])  # the bytes before the cut still arrive (a frame cut in the middle)
                    link.down += keep
                    self.bytes_down += keep
                    with contextlib.suppress(OSError, ConnectionError):
                        await dst.drain()
                    self._record_cut(link)
                    return
                dst.write(data)
                if down:
                    link.down += len(data)
                    self.bytes_down += len(data)
                await dst.drain()
        if not link.cut:  # one side closed: close the other
            with contextlib.suppress(OSError):
                dst.close()
