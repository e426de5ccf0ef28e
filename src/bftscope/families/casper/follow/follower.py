"""Following the Casper nodes of one network (docs/casper.md "Followers"): :class:`CasperFollower`.

Per node, one SSE connection per channel (:mod:`.nodeurl`), each a source of the shared live runner
(:class:`~bftscope.ingest.live.LiveRunner`: capped backoff with full jitter between attempts, observation gaps
while a channel is down). Every connection passes the ``ApiVersion`` handshake first (:mod:`.handshake`; an
incompatible node is not retried); no bytes for ``keepalive_timeout`` seconds is a lost connection (the SSE
transport's idle timeout: keep-alive comments count); a reconnect asks ``?start_from=<the last id seen on that
channel>`` — the node re-sends from that event, and the store keeps each (node, id, type, key) once. A first
connection asks ``start_from=0`` (the node's whole buffer) unless ``from_start`` is off, or a resumed run gives
the ids it holds (``start_from``).

Events are handed to the sink in batches every ``flush_interval`` seconds, per node (ApiVersion is not an
entity: never written), then to the :meth:`CasperFollower.listen` callbacks. The follower implements the
supervisor's ``Follower`` protocol (``run``/``stop``/``status``/``listen``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from bftscope.families.casper.decoder import CasperDecoder
from bftscope.families.casper.follow.handshake import HandshakeTransport
from bftscope.families.casper.follow.nodeurl import NodeUrl, parse_node_url
from bftscope.families.casper.follow.status import STATE_NAMES, CasperNodeStatus, CasperStatus, node_status
from bftscope.families.casper.model import CasperEvent
from bftscope.ingest.live import (
    JITTER,
    Backoff,
    EventSink,
    Gap,
    LiveRunner,
    LiveSource,
    SourceState,
    SourceStats,
    hand_over,
)
from bftscope.sources.base import Frame
from bftscope.sources.sse import SSETransport

__all__ = ["CasperFollower", "Rows", "rows_of"]

Rows = list[dict[str, Any]]
_DOWN = (SourceState.BACKOFF, SourceState.FAILED)
MAX_BUFFERED = 200_000  # events held for a store that refuses writes before the oldest are dropped (counted)


@dataclass
class _Channel:
    node: _Node
    name: str
    source: str  # the live runner's name of it: "<label>/<channel>"
    handshake: HandshakeTransport
    decoder: CasperDecoder


@dataclass
class _Node:
    url: NodeUrl
    status: CasperNodeStatus
    channels: list[_Channel]


class CasperFollower:
    def __init__(
        self,
        name: str,
        urls: Sequence[str],
        sink: EventSink,
        *,
        keepalive_timeout: float = 120.0,
        connect_timeout: float = 5.0,
        backoff: Backoff | None = None,
        max_attempts: int | None = None,
        flush_interval: float = 0.005,
        from_start: bool = True,
        start_from: Mapping[tuple[str, str], int] | None = None,
        clock: Callable[[], float] = time.time,
        draw: Callable[[], float] = JITTER,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if not urls:
            raise ValueError("a Casper network needs at least one node URL")
        self.name, self.sink = name, sink
        self._nodes: dict[str, _Node] = {}
        self._by_source: dict[str, _Channel] = {}
        for url in urls:
            parsed = parse_node_url(url)
            node = self._nodes.setdefault(parsed.label, _Node(parsed, CasperNodeStatus(parsed.url, parsed.label), []))
            for ch, ch_url in parsed.channels.items():
                source = f"{parsed.label}/{ch}"
                if source in self._by_source:
                    continue
                decoder = CasperDecoder(parsed.label, ch, clock=lambda: int(clock() * 1e9))
                sse = SSETransport(ch_url, resume_param="start_from", timeout=connect_timeout,
                                   idle_timeout=keepalive_timeout, name=source)  # fmt: skip
                channel = _Channel(node, ch, source, HandshakeTransport(sse, decoder), decoder)
                node.channels.append(channel)
                self._by_source[source] = channel
        self._last_ids: dict[tuple[str, str], int] = dict(start_from or {})
        self._from_start = from_start
        self._backoff, self._max_attempts = backoff or Backoff(base=0.5, cap=30.0), max_attempts
        self._flush_interval = flush_interval
        self._clock, self._draw, self._sleep = clock, draw, sleep
        self._pending: dict[str, list[CasperEvent]] = {}
        self._listeners: list[Callable[[Rows], None]] = []
        self._counts: Counter[str] = Counter()
        self._height: int | None = None
        self._runner: LiveRunner | None = None
        self._task: asyncio.Task[Any] | None = None
        self._stopping = False
        self.last_write_error: str | None = None

    # --- the Follower protocol ------------------------------------------------------------------

    def listen(self, callback: Callable[[Rows], None]) -> Callable[[], None]:
        """Call ``callback`` with each batch written (one dict per event); returns the function that stops it."""
        self._listeners.append(callback)
        return lambda: self._listeners.remove(callback) if callback in self._listeners else None

    async def run(self) -> None:
        """Follow until :meth:`stop` (or every node gave up); then write what is held and flush the sink."""
        if self._stopping:
            return
        self._task = asyncio.current_task()
        sources = [LiveSource(c.source, c.handshake, c.decoder, partial(self._resume, c))
                   for c in self._by_source.values()]  # fmt: skip
        self._runner = LiveRunner(sources, _Intake(self), backoff=self._backoff, max_attempts=self._max_attempts,
                                  clock=self._clock, draw=self._draw, sleep=self._sleep)  # fmt: skip
        flusher = asyncio.create_task(self._flush_loop(), name=f"casper:{self.name}:flush")
        try:
            await self._runner.run()
        except asyncio.CancelledError:
            if not self._stopping:
                raise
        finally:
            flusher.cancel()
            await asyncio.gather(flusher, return_exceptions=True)
            self._flush()
            self.sink.flush()

    async def stop(self) -> None:
        self._stopping = True
        if self._runner is not None:
            await self._runner.stop()
        task = self._task
        if task is not None and task is not asyncio.current_task() and not task.done():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait([task])

    def status(self) -> CasperStatus:
        nodes = []
        for node in self._nodes.values():
            st = node.status
            runner = self._runner
            stats = [runner.stats[c.source] if runner is not None else SourceStats() for c in node.channels]
            st.status = node_status(self._runner is not None, any(c.handshake.incompatible for c in node.channels),
                                    stats)  # fmt: skip
            st.state, st.active = STATE_NAMES[st.status], st.status == 2
            if stats and all(s.state == SourceState.STOPPED for s in stats):
                st.state = "stopped"
            st.api_version = next((c.handshake.version for c in node.channels if c.handshake.version), None)
            st.reconnects = sum(s.reconnects for s in stats)
            st.errors = st.reconnects + sum(s.state in _DOWN for s in stats)
            st.frames = sum(s.frames for s in stats)
            st.bad_handshakes = sum(c.handshake.bad_handshakes for c in node.channels)
            skipped: Counter[str] = Counter()
            for c in node.channels:
                skipped.update(c.decoder.report.skipped)
            st.skipped = dict(skipped)
            st.channels = {c.name: s.state.value for c, s in zip(node.channels, stats, strict=True)}
            ids = {c.name: self._last_ids.get((st.label, c.name)) for c in node.channels}
            st.last_ids = {ch: i for ch, i in ids.items() if i is not None}
            errors = [c.handshake.incompatible or s.last_error for c, s in zip(node.channels, stats, strict=True)]
            st.last_error = next((e for e in errors if e), st.last_error)
            nodes.append(dataclasses.replace(st, skipped=dict(st.skipped)))
        return CasperStatus(self.name, nodes, events_total=self._counts["written"], height=self._height,
                            gaps=self._counts["gaps"], write_errors=self._counts["write_errors"],
                            listener_errors=self._counts["listener_errors"])  # fmt: skip

    # --- events ---------------------------------------------------------------------------------

    def _resume(self, channel: _Channel, frame: Frame | None) -> str | None:
        """Where a connection of ``channel`` starts: after the last id seen on it (the node sends id ≥ N, so
        that event again), else the node's whole buffer (``from_start``) or only what comes next."""
        last = self._last_ids.get((channel.node.url.label, channel.name))
        if last is not None:
            return str(last)
        return "0" if self._from_start else None

    def _take(self, source: str, events: Sequence[CasperEvent]) -> None:
        channel = self._by_source[source]
        st = channel.node.status
        held = self._pending.setdefault(st.label, [])
        for e in events:
            if e.type == "ApiVersion":  # a version change mid-stream: the handshake's business, not an entity
                continue
            if e.event_id is not None:
                self._last_ids[(st.label, channel.name)] = e.event_id
            if e.type == "Shutdown":
                st.shutdowns += 1
            elif e.type == "BlockAdded" and (self._height is None or e.fields["height"] > self._height):
                self._height = int(e.fields["height"])
            held.append(e)
            st.events += 1
        del held[:-MAX_BUFFERED]

    def _gap(self, gap: Gap) -> None:
        channel = self._by_source.get(gap.source)
        self._counts["gaps"] += 1
        channel_name = channel.name if channel is not None else "?"
        label = channel.node.url.label if channel is not None else gap.source
        self.sink.gap(dataclasses.replace(gap, source=label, reason=f"{channel_name}: {gap.reason}"))

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(self._flush_interval)  # real time, whatever the injected backoff sleep
            self._flush()

    def _flush(self) -> None:
        for label in list(self._pending):
            events = self._pending[label]
            if not events:
                continue
            error = hand_over(self.sink, label, events, self._listeners, self._counts, rows_of)
            if error is not None:  # the store refused: keep the events for the next flush (bounded in _take)
                self.last_write_error = error
                continue
            self._pending[label] = []
            self._counts["written"] += len(events)


def rows_of(events: Sequence[CasperEvent]) -> Rows:
    """What a listener gets of a batch: one dict per event."""
    return [_row(e) for e in events]


def _row(e: CasperEvent) -> dict[str, Any]:
    return {"kind": e.type, "key": e.key, "source": e.source, "channel": e.channel, "event_id": e.event_id,
            "height": e.fields.get("height"), "ts": e.received_ns}  # fmt: skip


class _Intake:
    """The live runner's sink: events and gaps go to the follower, which batches them for the real sink."""

    def __init__(self, follower: CasperFollower) -> None:
        self.follower = follower

    def write(self, source: str, events: Sequence[Any]) -> None:
        self.follower._take(source, events)

    def gap(self, gap: Gap) -> None:
        self.follower._gap(gap)

    def flush(self) -> None:
        return None  # the follower flushes its batches itself
