"""What every source is made of: a :class:`Transport` that moves frames, and a :class:`Decoder` that turns
them into normalized events.

The split is the point (issue 11): *how bytes arrive* (a file's byte range, an HTTP SSE stream, a websocket,
a recorded transcript) is independent of *what they mean* (CometBFT JSON logs, Casper SSE events, Substrate
telemetry). A chain family declares its live sources as :class:`LiveSourceSpec` pairs of factories, and the
batch pipeline and the live runner (:mod:`bftscope.ingest.live`) drive any pair the same way.

A transport's lifecycle is ``open(resume_from)`` → ``receive()`` until it raises → ``close()``.
``receive`` raises :class:`~bftscope.errors.TransportClosed` when the stream ended in order and
:class:`~bftscope.errors.TransportError` when it failed; a *finite* transport (a file, a recording) ending is
the end of the source, an infinite one ending is a lost connection to reconnect. Modelled on httpx's
transports: a small base class, and a :class:`MockTransport` beside each real one for tests.
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from bftscope.errors import TransportClosed, TransportError
from bftscope.ingest.parsereport import ParseReport

__all__ = [
    "Decoder",
    "DecoderFactory",
    "Frame",
    "LiveSourceSpec",
    "MockTransport",
    "Transport",
    "TransportClosed",
    "TransportError",
    "TransportFactory",
]


@dataclass(frozen=True, slots=True)
class Frame:
    """One unit a transport delivers: a chunk of a byte stream, a websocket message or an SSE event.

    ``id`` is where the stream can resume after this frame (SSE ``id:``, a byte offset …), ``event`` the
    SSE event type (``"message"`` when none was given), ``retry`` the reconnection delay the server asked
    for (SSE ``retry:``, milliseconds).
    """

    data: bytes
    id: str | None = None
    event: str = "message"
    retry: int | None = None


class Transport(abc.ABC):
    """A connection that delivers :class:`Frame` s. Subclasses implement the three lifecycle methods."""

    name: str = "transport"
    finite: bool = False  # True: a TransportClosed is the end of the source (file, recording), not a lost link

    @abc.abstractmethod
    async def open(self, resume_from: str | None = None) -> None:
        """Connect; ``resume_from`` is the last position the consumer saw (resume after it). Raises
        :class:`TransportError` when the connection cannot be made."""

    @abc.abstractmethod
    async def receive(self) -> Frame:
        """The next frame; :class:`TransportClosed` at the end of the stream, :class:`TransportError` on failure."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release the connection. Safe to call twice, and after a failed ``open``."""

    async def __aiter__(self) -> AsyncIterator[Frame]:
        """Frames until the stream ends in order (a failure still raises)."""
        while True:
            try:
                frame = await self.receive()
            except TransportClosed:
                return
            yield frame


class Decoder(Protocol):
    """Frames → normalized events, stateful across frames (a record may be split over several), counting
    what it skips in :attr:`report` instead of raising. What an "event" is belongs to the family (Arrow
    tables of :data:`bftscope.model.ROW_SCHEMA` for CometBFT); the runner hands them to its sink untouched."""

    report: ParseReport

    def feed(self, frame: Frame) -> Sequence[Any]:
        """Events completed by this frame (maybe none)."""
        ...

    def finish(self) -> Sequence[Any]:
        """Events still held when the source ends for good (a last record with no terminator)."""
        ...


TransportFactory = Callable[[str], Transport]  # endpoint (URL, path) → a transport for it
DecoderFactory = Callable[[], Decoder]


@dataclass(frozen=True)
class LiveSourceSpec:
    """A live source a chain family offers: ``name`` (``"cometbft-rpc"``, ``"casper-sse"`` …), how to connect
    and how to decode. ``resume`` turns the last frame seen into the position to reconnect from (default:
    the frame's ``id``, e.g. SSE ``Last-Event-ID``)."""

    name: str
    transport: TransportFactory
    decoder: DecoderFactory
    description: str = ""


class MockTransport(Transport):
    """An in-memory transport for tests: replays ``frames`` and cuts the connection where told.

    ``cuts`` are frame indexes (into ``frames``): the connection fails with :class:`TransportError` just
    before delivering that frame (each cut fires once). ``refuse`` makes the next that many ``open`` calls
    fail. On ``open(resume_from)`` the stream restarts after the frame whose ``id`` is ``resume_from`` (as an
    SSE server honouring ``Last-Event-ID`` does), or from the start when the id is unknown or None —
    frames without ids are therefore delivered again after a reconnect, which tests can rely on.
    Every ``open`` is logged in :attr:`opens`.
    """

    def __init__(
        self,
        frames: Iterable[Frame | bytes],
        *,
        cuts: Iterable[int] = (),
        refuse: int = 0,
        finite: bool = False,
        name: str = "mock",
    ) -> None:
        self.frames = [f if isinstance(f, Frame) else Frame(f) for f in frames]
        self.cuts = set(cuts)
        self.refuse = refuse
        self.finite = finite
        self.name = name
        self.opens: list[str | None] = []
        self.is_open = False
        self._pos = 0
        self._forever = not finite  # an infinite mock idles at the end, as a quiet live stream would

    async def open(self, resume_from: str | None = None) -> None:
        self.opens.append(resume_from)
        if self.refuse > 0:
            self.refuse -= 1
            raise TransportError("connection refused (mock)")
        self._pos = 0
        if resume_from is not None:
            for i, f in enumerate(self.frames):
                if f.id == resume_from:
                    self._pos = i + 1
        self.is_open = True

    async def receive(self) -> Frame:
        if not self.is_open:
            raise TransportError("not open")
        if self._pos in self.cuts:
            self.cuts.discard(self._pos)
            self.is_open = False
            raise TransportError(f"connection cut before frame {self._pos} (mock)")
        if self._pos >= len(self.frames):
            if self._forever:
                await _idle()
            raise TransportClosed("end of mock stream")
        frame = self.frames[self._pos]
        self._pos += 1
        return frame

    async def close(self) -> None:
        self.is_open = False


async def _idle() -> None:
    await asyncio.Event().wait()  # until cancelled
