"""One Casper node's SSE server, replayed: :class:`ReplayNode` (raw ``asyncio.start_server``, HTTP/1.1).

It plays a node (Casper 1.x, docs/casper.md "Events") from a list of event payloads: ``/events/main``,
``/events/deploys``, ``/events/sigs`` and the legacy ``/events``, each carrying the types of
:data:`~bftscope.families.casper.model.CHANNELS` (a payload of a type no channel names goes to all of them).
Every connection starts with ``ApiVersion`` (no ``id:``); then, with ``?start_from=N``, the buffered events
with id ≥ N (the whole buffer when N is older); then live events as they are emitted. Ids are the node's:
one u32 counter for the node (each channel sees its own subset), from ``first_id``, wrapping at 2^32.

A node's query rules are kept to the letter: ``start_from`` must be the only field and a u32, else 422
``invalid query: expected single field 'start_from=<EVENT ID>'``; an unknown path is 404 with the node's text;
``GET /status`` answers the node's ``build_version`` and ``api_version``. ``preload`` events are in the buffer
at start (all by default); the rest are emitted at ``rate`` per second, or by :meth:`ReplayNode.release`.
How bytes are written (batches, random splits, CRLF, seeded connection drops, keep-alive comments) is the
:class:`~bftscope.families.casper.replay.wire.Wire`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections import Counter
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from bftscope.families.casper.decoder import event_type
from bftscope.families.casper.model import CHANNELS
from bftscope.families.casper.replay.wire import Wire, event_bytes, http_chunk, pieces

__all__ = ["BAD_PATH", "BAD_QUERY", "ReplayNode"]

BAD_QUERY = "invalid query: expected single field 'start_from=<EVENT ID>'"
BAD_PATH = "invalid path: expected '/events/main', '/events/deploys' or '/events/sigs'"
_U32 = 2**32
_PATHS = {"/events/main": "main", "/events/deploys": "deploys", "/events/sigs": "sigs", "/events": "events"}
_REASONS = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 422: "Unprocessable Entity"}
_STREAM_HEAD = (b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
                b"transfer-encoding: chunked\r\n\r\n")  # fmt: skip


class ReplayNode:
    def __init__(
        self,
        events: Sequence[bytes],
        *,
        wire: Wire | None = None,
        api_version: str = "1.5.6",
        build_version: str | None = None,
        first_id: int = 0,
        preload: int | None = None,
        rate: float | None = None,
        buffer_length: int = 5000,
    ) -> None:
        self.events = list(events)
        self.wire = wire or Wire()
        self.api_version = api_version
        self.build_version = build_version or f"{api_version}-c1a2b3d4e"
        self.first_id = first_id % _U32
        self.rate = rate
        self.buffer_length = buffer_length
        self.emitted = len(self.events) if preload is None else max(0, min(preload, len(self.events)))
        kinds = [event_type(e) for e in self.events]
        self._on = {ch: [k is None or k not in _ALL or k in types for k in kinds] for ch, types in CHANNELS.items()}
        self.connections = 0
        self.drops = 0
        self.responses: Counter[int] = Counter()
        self.start_froms: list[tuple[str, int | None]] = []  # (channel, start_from) of each stream opened
        self.host, self.port = "127.0.0.1", 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tick: asyncio.Event | None = None  # set (and replaced) whenever events are emitted
        self._handlers: set[asyncio.Task[Any]] = set()
        self._emitter: asyncio.Task[None] | None = None

    # --- life -----------------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> ReplayNode:
        self._tick = asyncio.Event()
        self._server = await asyncio.start_server(self._handle, host, port)
        self.host, self.port = host, self._server.sockets[0].getsockname()[1]
        if self.rate and self.emitted < len(self.events):
            self._emitter = asyncio.create_task(self._emit_live(self.rate), name="casper-replay:emit")
        return self

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def close(self) -> None:
        if self._emitter is not None:
            self._emitter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._emitter
        if self._server is not None:
            self._server.close()
        for w in list(self._writers):
            w.transport.abort()
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> ReplayNode:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def release(self, n: int | None = None) -> None:
        """Emit the next ``n`` events (all that are left when None), as the node's live events."""
        self.emitted = len(self.events) if n is None else min(len(self.events), self.emitted + n)
        if self._tick is not None:
            tick, self._tick = self._tick, asyncio.Event()
            tick.set()

    def event_id(self, index: int) -> int:
        return (self.first_id + index) % _U32

    # --- HTTP -----------------------------------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.add(writer)
        if (me := asyncio.current_task()) is not None:
            self._handlers.add(me)
        try:
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ConnectionError):
                return
            method, _, rest = head.split(b"\r\n", 1)[0].decode("latin-1").partition(" ")
            target = rest.rpartition(" ")[0] or rest
            url = urlsplit(target)
            if method != "GET":
                await self._answer(writer, 405, "text/plain", "HTTP method not allowed")
            elif url.path == "/status":
                body = json.dumps({"api_version": self.api_version, "build_version": self.build_version,
                                   "chainspec_name": "casper-replay", "last_added_block_info": None})  # fmt: skip
                await self._answer(writer, 200, "application/json", body)
            elif (channel := _PATHS.get(url.path)) is None:
                await self._answer(writer, 404, "text/plain", BAD_PATH)
            elif (start := _start_from(url.query)) == "bad":
                await self._answer(writer, 422, "text/plain", BAD_QUERY)
            else:
                assert not isinstance(start, str)
                self.responses[200] += 1
                self.start_froms.append((channel, start))
                await self._stream(writer, channel, start)
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._writers.discard(writer)
            if me is not None:
                self._handlers.discard(me)
            if writer.transport.is_closing():
                writer.transport.abort()
            else:
                writer.close()

    async def _answer(self, writer: asyncio.StreamWriter, status: int, ctype: str, body: str) -> None:
        self.responses[status] += 1
        data = body.encode()
        writer.write(f"HTTP/1.1 {status} {_REASONS[status]}\r\ncontent-type: {ctype}\r\ncontent-length: {len(data)}"
                     f"\r\nconnection: close\r\n\r\n".encode() + data)  # fmt: skip
        await writer.drain()

    # --- the stream -----------------------------------------------------------------------------

    async def _stream(self, writer: asyncio.StreamWriter, channel: str, start_from: int | None) -> None:
        wire, on = self.wire, self._on[channel]
        rng = random.Random(f"{wire.seed}:{self.connections}")
        limit = None
        if wire.drop_every and (wire.max_drops is None or self.drops < wire.max_drops):
            limit = rng.randint(1, 2 * wire.drop_every)
        writer.write(_STREAM_HEAD)
        version = json.dumps({"ApiVersion": self.api_version}, separators=(",", ":")).encode()
        await self._send(writer, event_bytes(version, None, wire.eol), rng)
        pos, sent = self._start_index(start_from), 0
        while True:
            if pos >= self.emitted:
                assert self._tick is not None
                try:
                    await asyncio.wait_for(self._tick.wait(), wire.keepalive_s)
                except TimeoutError:
                    await self._send(writer, b":" + wire.eol + wire.eol, rng)
                continue
            batch: list[bytes] = []
            while pos < self.emitted and len(batch) < wire.batch:
                if on[pos]:
                    batch.append(event_bytes(self.events[pos], self.event_id(pos), wire.eol))
                pos += 1
            if limit is not None and sent + len(batch) >= limit and self._may_drop():
                self.drops += 1  # counted before the last write: another connection may check meanwhile
                keep = batch[: limit - sent]
                cut = batch[limit - sent] if len(batch) > limit - sent else b""
                tail = cut[: rng.randrange(len(cut))] if cut and rng.random() < 0.5 else b""  # maybe mid-event
                await self._send(writer, b"".join(keep) + tail, rng)
                writer.transport.abort()
                return
            sent += len(batch)
            if batch:
                await self._send(writer, b"".join(batch), rng)

    def _may_drop(self) -> bool:
        return self.wire.max_drops is None or self.drops < self.wire.max_drops

    def _start_index(self, start_from: int | None) -> int:
        """Where a stream starts: live events only without ``start_from``; else the buffered event of that id
        (ids wrap at 2^32), the oldest buffered one when it is older than the buffer, or a later one to wait for."""
        if start_from is None:
            return self.emitted
        oldest = max(0, self.emitted - self.buffer_length)
        index = (start_from - self.first_id) % _U32
        return index if oldest <= index <= len(self.events) else oldest

    async def _send(self, writer: asyncio.StreamWriter, payload: bytes, rng: random.Random) -> None:
        if not payload:
            return
        for piece in pieces(payload, rng, self.wire.split):
            writer.write(http_chunk(piece))
            await writer.drain()
            if self.wire.split:
                await asyncio.sleep(0)  # let each piece go out on its own

    async def _emit_live(self, rate: float) -> None:
        loop = asyncio.get_running_loop()
        t0, base = loop.time(), self.emitted
        while self.emitted < len(self.events):
            await asyncio.sleep(max(0.001, 1.0 / rate))
            due = min(len(self.events), base + int((loop.time() - t0) * rate))
            if due > self.emitted:
                await self.release(due - self.emitted)


_ALL = frozenset(t for types in CHANNELS.values() for t in types) | {"DeployAccepted", "DeployExpired", "Step"}


def _start_from(query: str) -> int | str | None:
    """The ``start_from`` of a query, None without a query, ``"bad"`` for anything a node refuses."""
    if not query:
        return None
    pairs = parse_qsl(query, keep_blank_values=True)
    if len(pairs) != 1 or pairs[0][0] != "start_from":
        return "bad"
    value = pairs[0][1]
    if not (value.isascii() and value.isdigit()) or int(value) >= _U32:
        return "bad"
    return int(value)
