"""Recorded transcripts replayed as a live stream, so that a recording goes through the same decoder and
the same live runner as the connection it was recorded from.

Two kinds of recording:

- a raw transcript (``*.sse``: the bytes an SSE server sent) is read in chunks and framed by the same
  :class:`~bftscope.sources.sse.SSEParser` the HTTP transport uses; it has no timing, so frames follow
  each other at ``interval`` seconds (0: as fast as the consumer reads);
- a timed recording (``*.jsonl``, written by :func:`write_recording`): one JSON object a line,
  ``{"t": seconds since the first frame, "data": text, "id": …, "event": …}``; frames are delivered at
  their recorded spacing divided by ``speed`` (``speed=0``: no waiting at all).

``open(resume_from)`` skips frames up to and including the one with that id, as a server honouring
``Last-Event-ID`` would. ``sleep`` is injectable so tests never wait.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path

from bftscope.errors import TransportClosed, TransportError
from bftscope.sources.base import Frame, Transport
from bftscope.sources.sse import SSEParser

__all__ = ["ReplayTransport", "read_recording", "write_recording"]

_CHUNK = 64 * 1024


def write_recording(path: Path, frames: Iterable[tuple[float, Frame]]) -> int:
    """Write ``(seconds, frame)`` pairs as a timed recording; the number written."""
    n = 0
    t0: float | None = None
    with path.open("w", encoding="utf-8") as out:
        for t, frame in frames:
            t0 = t if t0 is None else t0
            row = {"t": round(t - t0, 6), "data": frame.data.decode("utf-8", errors="replace"), "id": frame.id,
                   "event": frame.event}  # fmt: skip
            out.write(json.dumps(row, separators=(",", ":")) + "\n")
            n += 1
    return n


def read_recording(path: Path) -> list[tuple[float, Frame]]:
    """The ``(seconds, frame)`` pairs of a recording: timed (``.jsonl``) or a raw SSE transcript."""
    if path.suffix == ".jsonl":
        out: list[tuple[float, Frame]] = []
        with path.open("rb") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                    frame = Frame(row["data"].encode(), id=row.get("id"), event=row.get("event") or "message")
                    out.append((float(row.get("t", 0.0)), frame))
                except (ValueError, KeyError, TypeError, AttributeError) as exc:
                    raise TransportError(f"{path}: line {n} is not a recorded frame ({exc})") from exc
        return out
    parser = SSEParser()
    frames: list[Frame] = []
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            frames.extend(parser.feed(chunk))
    return [(0.0, frame) for frame in frames]


class ReplayTransport(Transport):
    finite = True

    def __init__(
        self,
        path: Path,
        *,
        speed: float = 0.0,
        interval: float = 0.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        name: str = "replay",
    ) -> None:
        self.path = path
        self.name = name
        self._speed = speed
        self._interval = interval
        self._sleep = sleep
        self._frames: list[tuple[float, Frame]] | None = None
        self._pos = 0
        self._last_t: float | None = None

    async def open(self, resume_from: str | None = None) -> None:
        try:
            self._frames = read_recording(self.path)
        except OSError as exc:
            raise TransportError(f"cannot read recording {self.path}: {exc}") from exc
        self._pos, self._last_t = 0, None
        if resume_from is not None:
            for i, (_, frame) in enumerate(self._frames):
                if frame.id == resume_from:
                    self._pos = i + 1

    async def receive(self) -> Frame:
        if self._frames is None:
            raise TransportError("not open")
        if self._pos >= len(self._frames):
            raise TransportClosed(f"end of recording {self.path}")
        t, frame = self._frames[self._pos]
        self._pos += 1
        wait = self._interval
        if self._speed > 0 and self._last_t is not None:
            wait = max(0.0, t - self._last_t) / self._speed
        self._last_t = t
        if wait > 0:
            await self._sleep(wait)
        return frame

    async def close(self) -> None:
        self._frames = None
