"""The live runner: drives long-lived (transport, decoder) sources into a sink, supervised.

One asyncio task per source. A source connects (``connecting``), delivers frames (``live``), and when its
connection is lost waits a capped exponential backoff with full jitter (``backoff``: a delay drawn
uniformly from ``[0, min(cap, base·2^attempt))``, so that many sources cut by the same outage do not
reconnect in lockstep) before connecting again, resuming from the position its last frame gave
(SSE ``Last-Event-ID``). A finite source (a file, a recording) that ends is ``stopped``; one that keeps
failing past ``max_attempts`` is ``failed``; :meth:`LiveRunner.stop` cancels every task, closes every
transport, hands the decoders' last events to the sink and flushes it.

Not seeing data is not the same as data missing: while a source is disconnected the runner records an
observation :class:`Gap` (source, start, end, reason), so analytics can answer "unknown" for that time
instead of "no votes". The clock, the random draw and the sleep are injectable so tests never wait.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from bftscope.errors import TransportClosed, TransportError
from bftscope.sources.base import Decoder, Frame, Transport

__all__ = ["JITTER", "Backoff", "EventSink", "Gap", "LiveRunner", "LiveSource", "MemorySink", "SourceState",
           "SourceStats", "hand_over"]

# Jitter draws come from a generator of their own, never the random module's global one: live code runs beside
# other code (tests, an embedding program) whose own use of the global generator it must not disturb.
JITTER = random.Random().random


class SourceState(StrEnum):
    CONNECTING = "connecting"
    LIVE = "live"
    BACKOFF = "backoff"
    STOPPED = "stopped"
    FAILED = "failed"


@dataclass(frozen=True)
class Gap:
    """Time (epoch seconds) a source was not observed: from losing its connection to having one again
    (or to the runner stopping, when it never came back)."""

    source: str
    start: float
    end: float
    reason: str


@dataclass
class SourceStats:
    state: SourceState = SourceState.CONNECTING
    frames: int = 0
    events: int = 0
    bytes: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    reconnects: int = 0
    last_error: str | None = None
    last_frame_at: float | None = None
    resume_from: str | None = None


@dataclass(frozen=True)
class Backoff:
    """Capped exponential backoff with full jitter: attempt ``n`` waits ``uniform(0, min(cap, base·factor^n))``."""

    base: float = 0.5
    factor: float = 2.0
    cap: float = 30.0

    def delay(self, attempt: int, draw: Callable[[], float] = JITTER) -> float:
        ceiling = min(self.cap, self.base * self.factor ** min(attempt, 64))
        return draw() * ceiling


def _resume_from_id(frame: Frame | None) -> str | None:
    return frame.id if frame is not None else None


@dataclass
class LiveSource:
    """A running source: its name, its transport, its decoder, and how to resume (default: the last
    frame's ``id``)."""

    name: str
    transport: Transport
    decoder: Decoder
    resume: Callable[[Frame | None], str | None] = _resume_from_id


class EventSink(Protocol):
    """Where decoded events go (the store's writer, in production)."""

    def write(self, source: str, events: Sequence[Any]) -> None: ...

    def gap(self, gap: Gap) -> None: ...

    def flush(self) -> None: ...


@dataclass
class MemorySink:
    """An :class:`EventSink` that keeps everything in lists (tests, previews)."""

    events: list[tuple[str, Any]] = field(default_factory=list)
    gaps: list[Gap] = field(default_factory=list)
    flushes: int = 0

    def write(self, source: str, events: Sequence[Any]) -> None:
        self.events.extend((source, e) for e in events)

    def gap(self, gap: Gap) -> None:
        self.gaps.append(gap)

    def flush(self) -> None:
        self.flushes += 1


def hand_over(sink: EventSink, source: str, batch: Sequence[Any], listeners: Sequence[Callable[[Any], None]],
              counts: Counter[str], view: Callable[[Sequence[Any]], Any] = lambda b: b) -> str | None:
    """A follower's flush of one source's batch: written to ``sink``, then ``view(batch)`` given to each listener.
    Returns None when written, else the store's error (the batch stays the caller's, to try again); failed
    writes and listeners that raised are counted in ``counts`` (``write_errors``, ``listener_errors``) — a
    store that refuses or a subscriber's bug never stops a follower."""
    try:
        sink.write(source, batch)
    except Exception as exc:
        counts["write_errors"] += 1
        return f"{type(exc).__name__}: {exc}"[:300]
    if listeners:
        shown = view(batch)
        for callback in list(listeners):
            try:
                callback(shown)
            except Exception:
                counts["listener_errors"] += 1
    return None


class LiveRunner:
    """Supervises ``sources`` (names must be unique) until all stop or :meth:`stop` is called."""

    def __init__(
        self,
        sources: Sequence[LiveSource],
        sink: EventSink,
        *,
        backoff: Backoff | None = None,
        max_attempts: int | None = None,
        clock: Callable[[], float] = time.time,
        draw: Callable[[], float] = JITTER,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        names = [s.name for s in sources]
        if len(set(names)) != len(names):
            raise ValueError(f"live source names must be unique: {names}")
        self.sources = list(sources)
        self.sink = sink
        self.backoff = backoff or Backoff()
        self.max_attempts = max_attempts
        self.stats = {s.name: SourceStats() for s in sources}
        self.delays: dict[str, list[float]] = {s.name: [] for s in sources}  # every backoff waited, per source
        self._clock, self._draw, self._sleep = clock, draw, sleep
        self._gap_start: dict[str, tuple[float, str]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False

    async def run(self) -> None:
        """Run every source to its end; on cancellation (or :meth:`stop`) shut down cleanly."""
        self._stopping = False
        self._tasks = [asyncio.create_task(self._supervise(s), name=f"live:{s.name}") for s in self.sources]
        try:
            await asyncio.gather(*self._tasks)
        except asyncio.CancelledError:
            if not self._stopping:
                raise  # our caller cancelled us (the finally still shuts down); after stop() it is the plan
        finally:
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            now = self._clock()
            for name, (start, reason) in sorted(self._gap_start.items()):
                self.sink.gap(Gap(name, start, now, reason))  # never reconnected: unobserved until the end
            self._gap_start.clear()
            self.sink.flush()

    async def stop(self) -> None:
        """Cancel every source, close its transport, flush the sink (what :meth:`run` does on the way out)."""
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _supervise(self, src: LiveSource) -> None:
        stats = self.stats[src.name]
        attempt = 0
        last: Frame | None = None
        try:
            while True:
                stats.state = SourceState.CONNECTING
                stats.resume_from = src.resume(last)
                lost: str
                try:
                    await src.transport.open(stats.resume_from)
                    stats.state = SourceState.LIVE
                    self._end_gap(src.name)
                    while True:
                        frame = await src.transport.receive()
                        last = frame
                        attempt = 0  # a connection that delivered is healthy: the next loss starts over
                        self._take(src, stats, frame, src.decoder.feed(frame))
                except TransportClosed as exc:
                    if src.transport.finite:
                        self._take(src, stats, None, src.decoder.finish())
                        stats.state = SourceState.STOPPED
                        return
                    lost = str(exc)
                except TransportError as exc:
                    lost = str(exc)
                finally:
                    await src.transport.close()
                stats.last_error = lost
                self._start_gap(src.name, lost)
                if self.max_attempts is not None and attempt >= self.max_attempts:
                    stats.state = SourceState.FAILED
                    return
                stats.state = SourceState.BACKOFF
                delay = self.backoff.delay(attempt, self._draw)
                self.delays[src.name].append(delay)
                attempt += 1
                await self._sleep(delay)
                stats.reconnects += 1
        except asyncio.CancelledError:
            # Shutdown: what the decoder still holds is delivered, not lost.
            self._take(src, stats, None, src.decoder.finish())
            stats.state = SourceState.STOPPED
            raise
        except Exception as exc:  # a decoder or sink bug: this source fails, the others run on
            stats.last_error = f"{type(exc).__name__}: {exc}"
            stats.state = SourceState.FAILED
            self._start_gap(src.name, stats.last_error)
            await src.transport.close()

    def _take(self, src: LiveSource, stats: SourceStats, frame: Frame | None, events: Sequence[Any]) -> None:
        if frame is not None:
            stats.frames += 1
            stats.bytes += len(frame.data)
            stats.last_frame_at = self._clock()
        if events:
            stats.events += len(events)
            self.sink.write(src.name, events)
        if stats.skipped != src.decoder.report.skipped:  # a copy only when it changed (this runs per frame)
            stats.skipped = Counter(src.decoder.report.skipped)

    def _start_gap(self, name: str, reason: str) -> None:
        self._gap_start.setdefault(name, (self._clock(), reason))

    def _end_gap(self, name: str) -> None:
        started = self._gap_start.pop(name, None)
        if started is not None:
            self.sink.gap(Gap(name, started[0], self._clock(), started[1]))
