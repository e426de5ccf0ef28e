"""The child's side of :class:`~.process.ProcessFollower`, and the messages on its pipes.

Child → parent, one message each (the first byte says which): ``E`` a node's batch of events (msgpack: the node's
label and its :class:`~bftscope.families.casper.model.CasperEvent` s, as the journal encodes them), ``G`` an
observation gap, ``S`` the follower's status, ``D`` it ended, ``X`` it failed (the error's text). Gaps and statuses
are pickled: both ends are this program, and they are a few a second at most. Parent → child: ``stop``.
"""

from __future__ import annotations

import asyncio
import contextlib
import pickle
import signal
import time
from collections.abc import Sequence
from typing import Any, Final

import msgspec

from bftscope.families.casper.model import CasperEvent
from bftscope.ingest.live import Gap

__all__ = ["STOP", "PipeSink", "child_main", "decode"]

STOP: Final = b"stop"
_events_encoder = msgspec.msgpack.Encoder()
_events_decoder = msgspec.msgpack.Decoder(tuple[str, list[CasperEvent]])


def decode(msg: bytes) -> tuple[str, Any]:
    """(kind, body) of one child message: ("events", (label, events)), ("gap", Gap), ("status", CasperStatus),
    ("done", ""), ("failed", text), or ("unknown", None)."""
    tag, body = msg[:1], memoryview(msg)[1:]
    if tag == b"E":
        return "events", _events_decoder.decode(body)
    if tag == b"G":
        return "gap", pickle.loads(body)
    if tag == b"S":
        return "status", pickle.loads(body)
    if tag == b"D":
        return "done", ""
    if tag == b"X":
        return "failed", bytes(body).decode(errors="replace")
    return "unknown", None


class PipeSink:
    """The child follower's :class:`~bftscope.ingest.live.EventSink`: each write is one message to the parent."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.reporter: _Reporter | None = None

    def write(self, source: str, events: Sequence[Any]) -> None:
        if self.reporter is not None:
            self.reporter.check()
        self.conn.send_bytes(b"E" + _events_encoder.encode((source, list(events))))

    def gap(self, gap: Gap) -> None:
        self.conn.send_bytes(b"G" + pickle.dumps(gap))

    def flush(self) -> None:
        return None  # the parent flushes its own sink once this process has ended

    def status(self, status: Any) -> None:
        self.conn.send_bytes(b"S" + pickle.dumps(status))

    def end(self, error: str | None = None) -> None:
        with contextlib.suppress(OSError):  # the parent is gone: nobody to tell
            self.conn.send_bytes(b"D" if error is None else b"X" + error.encode())


def child_main(data: Any, control: Any, name: str, urls: list[str], options: dict[str, Any],
               status_s: float) -> None:  # fmt: skip
    """The child process: follow until told to stop (or the parent is gone), reporting on ``data``."""
    from bftscope import runtime

    runtime.apply()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C reaches the whole process group: the parent stops us
    try:
        asyncio.run(_follow(data, control, name, urls, options, status_s))
    finally:
        data.close()


async def _follow(data: Any, control: Any, name: str, urls: list[str], options: dict[str, Any],
                  status_s: float) -> None:  # fmt: skip
    from bftscope.families.casper.follow.follower import CasperFollower

    loop = asyncio.get_running_loop()
    sink = PipeSink(data)
    try:
        follower = CasperFollower(name, urls, sink, **options)
    except Exception as exc:
        sink.end(f"{type(exc).__name__}: {exc}")
        return
    stopping: list[asyncio.Task[None]] = []  # the stop, once asked

    def stop() -> None:
        if not stopping:
            loop.remove_reader(control.fileno())
            stopping.append(loop.create_task(follower.stop()))

    def on_control() -> None:
        try:
            msg = control.recv_bytes()
        except (EOFError, OSError):  # the parent is gone: nobody stores what we would read
            msg = STOP
        if msg == STOP:
            stop()

    loop.add_reader(control.fileno(), on_control)
    # a SIGTERM to the server's whole process group (a service manager stopping it) ends the child as a stop
    # does: what it holds is handed over first, and the parent sees an end, not a crash to restart
    loop.add_signal_handler(signal.SIGTERM, stop)
    sink.reporter = _Reporter(sink, follower, status_s)
    reporter = loop.create_task(sink.reporter.run())
    error = None
    try:
        await follower.run()
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
    finally:
        reporter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reporter
    with contextlib.suppress(OSError):
        sink.status(follower.status())
    sink.end(error)


class _Reporter:
    """Sends the follower's status when a node's state changed since the last one sent, else every
    ``every_s``: before each batch of events (the parent never sees events newer than the state they came in)
    and every ``look_s`` (a connection lost is seen at once)."""

    def __init__(self, sink: PipeSink, follower: Any, every_s: float) -> None:
        self.sink, self.follower, self.every_s = sink, follower, every_s
        self._last: tuple[Any, ...] | None = None
        self._sent = 0.0

    def check(self) -> None:
        status = self.follower.status()
        states = tuple((n.status, n.state, n.reconnects, n.api_version, n.last_error) for n in status.nodes)
        now = time.monotonic()
        if states != self._last or now - self._sent >= self.every_s:
            self.sink.status(status)
            self._last, self._sent = states, now

    async def run(self, look_s: float = 0.05) -> None:
        while True:
            with contextlib.suppress(OSError):
                self.check()
            await asyncio.sleep(look_s)
