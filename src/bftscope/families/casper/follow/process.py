"""A Casper network's follower in a child process (docs/casper.md "Followers"): :class:`ProcessFollower`.

Reading a node's SSE stream and decoding each event's JSON costs Python ~15 µs an event. In the server's process
that time competes for the GIL with the sink's writer thread, the publisher and the subscribers' sends: at 20,000
events/s it was a third of the writer process's CPU and most of its latency tail (bench/casper_bench.py). So
``bftscope serve`` runs each Casper network's :class:`~.follower.CasperFollower` (connections, handshakes, SSE
parsing, decoding, reconnects with ``start_from``) in a child process, and the parent only hands the decoded
events to the network's sink — the store, the journal and the publishing stay in the parent, one writer per
network as before.

The child sends on one pipe, one message each (:mod:`.pipewire`): a node's batch of events, an observation
gap, its status every ``status_s``, and how it ended; the parent sends ``stop`` on another. A child whose parent
vanished (the control pipe's end of file) stops as if told to; a parent whose child vanished (killed, crashed)
ends :meth:`ProcessFollower.run` with :class:`FollowerProcessError`, and the supervisor makes a new follower after
its backoff, which resumes each node channel from the last id the store holds. Its status then shows each node
as it last reported, ``state: "stopped"``: what the nodes do while nobody follows them is unknown, and said so.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import fcntl
import logging
import multiprocessing as mp
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from bftscope.families.casper.follow import pipewire
from bftscope.families.casper.follow.follower import Rows, rows_of
from bftscope.families.casper.follow.nodeurl import parse_node_url
from bftscope.families.casper.follow.status import PREPARING, CasperNodeStatus, CasperStatus
from bftscope.ingest.live import EventSink, hand_over

__all__ = ["FollowerProcessError", "ProcessFollower"]

log = logging.getLogger(__name__)


class FollowerProcessError(RuntimeError):
    """The follower's child process failed or vanished."""


class ProcessFollower:
    """Follows ``urls`` (as :class:`~.follower.CasperFollower`, whose keyword ``options`` it takes: all but the
    injected clock, jitter and sleep) in a child process, writing what it decodes to ``sink`` in this one.
    Implements the supervisor's ``Follower`` protocol (``run``/``stop``/``status``/``listen``)."""

    def __init__(self, name: str, urls: Sequence[str], sink: EventSink, *, status_s: float = 0.5,
                 stop_timeout: float = 10.0, **options: Any) -> None:  # fmt: skip
        if not urls:
            raise ValueError("a Casper network needs at least one node URL")
        nodes: dict[str, CasperNodeStatus] = {}
        for url in urls:  # refused here, before a process is started for it
            parsed = parse_node_url(url)
            nodes.setdefault(parsed.label, CasperNodeStatus(parsed.url, parsed.label))
        self.name, self.urls, self.sink = name, list(urls), sink
        self._options = {**options, "start_from": dict(options.get("start_from") or {})}
        self._status_s, self._stop_timeout = status_s, stop_timeout
        self._reported = CasperStatus(name, list(nodes.values()))
        self._listeners: list[Callable[[Rows], None]] = []
        self._counts: Counter[str] = Counter()
        self._stopping = False
        self._running = False
        self._task: asyncio.Task[Any] | None = None
        self._control: Any = None
        self._process: Any = None
        self.last_write_error: str | None = None
        self.unknown_messages = 0

    # --- the Follower protocol ------------------------------------------------------------------

    def listen(self, callback: Callable[[Rows], None]) -> Callable[[], None]:
        """Call ``callback`` on the running event loop with each batch written (one dict per event)."""
        self._listeners.append(callback)
        return lambda: self._listeners.remove(callback) if callback in self._listeners else None

    async def run(self) -> None:
        """Start the child and hand what it sends to the sink until it ends (:meth:`stop`, or every node gave
        up); then flush the sink. Raises :class:`FollowerProcessError` when the child failed or vanished."""
        if self._stopping:
            return
        self._task = asyncio.current_task()
        loop = asyncio.get_running_loop()
        spawn = mp.get_context("spawn")  # no fork of a process with threads and open stores
        data_in, data_out = spawn.Pipe(duplex=False)
        _widen(data_in)
        control_in, control_out = spawn.Pipe(duplex=False)
        process = spawn.Process(target=pipewire.child_main, name=f"bftscope-casper:{self.name}", daemon=True,
                                args=(data_out, control_in, self.name, self.urls, self._options, self._status_s))
        await asyncio.to_thread(process.start)
        data_out.close()  # the child's ends: its exit is an end of file here
        control_in.close()
        self._process, self._control, self._running = process, control_out, True
        ended: asyncio.Future[tuple[str, str]] = loop.create_future()
        reader = threading.Thread(target=self._read, args=(data_in, loop, ended), daemon=True,
                                  name=f"casper-follow-read:{self.name}")  # fmt: skip
        reader.start()
        try:
            if self._stopping:  # stop() came while the child was starting
                self._tell_stop()
            how, why = await asyncio.shield(ended)
        finally:
            await asyncio.to_thread(self._end_child, reader)
            self._running = False
            await asyncio.to_thread(self.sink.flush)
        if how == "failed":
            raise FollowerProcessError(f"the follower process of {self.name} failed: {why}")
        if how == "vanished" and not self._stopping:
            raise FollowerProcessError(f"the follower process of {self.name} exited without ending "
                                       f"(exit code {process.exitcode})")  # fmt: skip

    async def stop(self) -> None:
        self._stopping = True
        self._tell_stop()
        task = self._task
        if task is not None and task is not asyncio.current_task() and not task.done():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait([task])

    def status(self) -> CasperStatus:
        st = self._reported
        nodes = st.nodes
        if self._process is not None and not self._running:  # it ended: nothing is known of the nodes now
            nodes = [dataclasses.replace(n, status=PREPARING, state="stopped", active=False) for n in nodes]
        return dataclasses.replace(st, nodes=nodes, events_total=self._counts["written"],
                                   write_errors=self._counts["write_errors"],
                                   listener_errors=self._counts["listener_errors"])  # fmt: skip

    # --- the parent's side of the pipe ----------------------------------------------------------

    def _tell_stop(self) -> None:
        control = self._control
        if control is not None:
            with contextlib.suppress(OSError, ValueError):  # the child already ended
                control.send_bytes(pipewire.STOP)

    def _read(self, conn: Any, loop: asyncio.AbstractEventLoop, ended: asyncio.Future[tuple[str, str]]) -> None:
        """The reader thread: every message of the child, until its end of file."""
        how, why = "vanished", ""
        try:
            while True:
                try:
                    msg = conn.recv_bytes()
                except (EOFError, OSError):
                    break
                kind, body = pipewire.decode(msg)
                if kind == "events":
                    self._hand(body[0], body[1], loop)
                elif kind == "gap":
                    self.sink.gap(body)
                elif kind == "status":
                    self._reported = body
                elif kind in ("done", "failed"):
                    how, why = kind, body
                else:
                    self.unknown_messages += 1
        finally:
            conn.close()
            loop.call_soon_threadsafe(lambda: None if ended.done() else ended.set_result((how, why)))

    def _hand(self, label: str, events: list[Any], loop: asyncio.AbstractEventLoop) -> None:
        """Write one node's batch; a sink that refuses it is asked again (the child waits meanwhile: its nodes
        hold the events) until it takes it or the follower stops."""
        delay = 0.05
        # written as the follower itself writes (counted in write_errors); its listeners are called on the loop
        while (error := hand_over(self.sink, label, events, (), self._counts)) is not None:
            self.last_write_error = error
            if self._stopping:
                log.error("casper network %s: %d events of %s not stored at stop: %s", self.name, len(events), label,
                          error)  # fmt: skip
                return
            time.sleep(delay)
            delay = min(1.0, delay * 2)
        self._counts["written"] += len(events)
        if self._listeners:
            loop.call_soon_threadsafe(self._notify, rows_of(events))

    def _notify(self, rows: Rows) -> None:
        for callback in list(self._listeners):
            try:
                callback(rows)
            except Exception:  # a subscriber's bug never stops following
                self._counts["listener_errors"] += 1
                log.exception("casper network %s: a listener failed", self.name)

    def _end_child(self, reader: threading.Thread) -> None:
        """Make sure the child is gone: asked to stop, then killed ``stop_timeout`` later."""
        process = self._process
        if process.is_alive():
            self._tell_stop()
        reader.join(self._stop_timeout)
        process.join(self._stop_timeout if not reader.is_alive() else 0.1)
        if process.is_alive():
            log.warning("casper network %s: the follower process did not end in %g s; killed", self.name,
                        self._stop_timeout)  # fmt: skip
            process.kill()
            process.join(5)
            reader.join(5)
        with contextlib.suppress(OSError):
            self._control.close()
        self._control = None



_PIPE_BYTES = 1 << 20  # Linux's default most for a pipe (/proc/sys/fs/pipe-max-size)


def _widen(conn: Any) -> None:
    """A pipe of 1 MiB rather than 64 KiB: a batch (~100-200 KiB at 20,000 events/s) is written in one go
    instead of waiting for the reader two or three times. Where that cannot be done, the pipe stays as it is."""
    with contextlib.suppress(OSError, AttributeError, ValueError):
        fcntl.fcntl(conn.fileno(), fcntl.F_SETPIPE_SZ, _PIPE_BYTES)
