"""Parser processes: run parse units and stream their batches back through a bounded queue.

Kept apart from the pipeline so a worker imports only the parsers (no store, no settings
machinery): a ``spawn``ed worker is ready in a fraction of the time. The pool is started before the
parent plans the ingest, so worker start-up overlaps with hashing and identity scans.

A worker never outlives the process that started it: on Linux the kernel kills it when its parent
dies (``PR_SET_PDEATHSIG``; note this fires when the *thread* that started the pool exits, and the
pool is always closed by that thread), and everywhere a watchdog thread exits it once its parent
pid changes. Without both, a ``kill -9`` of the CLI or the API server left parsers holding ~200 MB
each, blocked for ever on a queue nobody reads. Workers ignore SIGINT: a Ctrl-C reaches the whole
process group, and it is the parent's to handle (it stops the workers itself).
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import multiprocessing as mp
import os
import queue
import signal
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from bftscope.families.registry import format_by_name
from bftscope.ingest.discover import InputFile
from bftscope.sources.file import FileRangeTransport
from bftscope.sources.fileformat import FileFormatDecoder

__all__ = ["WATCHDOG_S", "Message", "Unit", "WorkerPool", "run_inline", "run_unit"]

WATCHDOG_S = 0.5  # how often a worker checks that its parent is alive (where prctl is unavailable)
_PR_SET_PDEATHSIG = 1

# ("batch", uid, table, raw_pos) | ("done", uid, report, raw_pos) | ("error", uid, text)
Message = tuple[Any, ...]


@dataclass(frozen=True)
class Unit:
    uid: int
    plan_index: int
    file: InputFile
    fmt_name: str
    start: int
    end: int | None


def run_unit(unit: Unit, batch_rows: int, max_line_bytes: int) -> Iterator[Message]:
    """Read the unit's byte range through the file transport and decode it with its format's decoder."""
    decoder = FileFormatDecoder(format_by_name(unit.fmt_name), batch_rows=batch_rows, max_line_bytes=max_line_bytes)
    report = decoder.report
    transport = FileRangeTransport(unit.file, unit.start, unit.end)
    for table in decoder.decode_range(transport):
        yield ("batch", unit.uid, table, transport.position)
    cut, position = transport.last_cut, transport.last_position
    if cut is not None:
        # What decompressed was parsed; the rest of the file is lost and says so.
        report.skip(cut.split(" after ")[0], f"offset {position} of the compressed file")
        report.warn(cut + "; kept what decompressed before it")
    yield ("done", unit.uid, report, position)


def run_inline(units: list[Unit], batch_rows: int, max_line_bytes: int) -> Iterator[Message]:
    for unit in units:
        try:
            yield from run_unit(unit, batch_rows, max_line_bytes)
        except Exception as exc:
            yield ("error", unit.uid, f"{type(exc).__name__}: {exc}")


def _die_with_parent(parent: int) -> None:
    """Make this process exit when ``parent`` does (see the module docstring)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):  # without it, the watchdog below still holds
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL))
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(WATCHDOG_S)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watchdog", daemon=True).start()


def _worker_main(tasks: Any, results: Any, batch_rows: int, max_line_bytes: int, parent: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent(parent)
    # A parser allocates millions of short-lived objects and no reference cycles, and its batches
    # keep ~100k objects alive: the cyclic collector, run every 700 allocations, spent about a
    # tenth of the parser's time re-scanning them. Reference counting frees everything here;
    # one collection per unit catches whatever cycle a library might leave.
    gc.disable()
    gc.freeze()  # what start-up imported stays; later collections skip it
    while True:
        unit = tasks.get()
        if unit is None:
            return
        try:
            for msg in run_unit(unit, batch_rows, max_line_bytes):
                results.put(_to_wire(msg))
        except Exception as exc:
            results.put(("error", unit.uid, f"{type(exc).__name__}: {exc}"))
        gc.collect()


def _to_wire(msg: Message) -> Message:
    """A batch's table travels as Arrow IPC bytes: pickling a table costs ~8x more than writing it
    as IPC, and the parent reads IPC bytes without a copy (:func:`_from_wire`)."""
    if msg[0] != "batch":
        return msg
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, msg[2].schema) as writer:
        writer.write_table(msg[2])
    return (msg[0], msg[1], sink.getvalue().to_pybytes(), *msg[3:])


def _from_wire(msg: Message) -> Message:
    if msg[0] != "batch":
        return msg
    return (msg[0], msg[1], pa.ipc.open_stream(pa.py_buffer(msg[2])).read_all(), *msg[3:])


_QUIET_TRACKER = "ignore::UserWarning:multiprocessing.resource_tracker"


class WorkerPool:
    """``n`` spawned parser processes. Results are bounded to two batches per worker (flat memory)."""

    def __init__(self, n: int, batch_rows: int, max_line_bytes: int) -> None:
        # Parsers never multiply matrices, but importing NumPy starts OpenBLAS's thread pool, whose
        # threads spin at start-up (~130 M instructions per process, measured with cachegrind) on the
        # cores the parsers need. Spawned processes inherit the environment, so one thread it is.
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
        # The queues' semaphores are registered with multiprocessing's resource tracker, a process of its
        # own that unlinks whatever is left when we exit. After a Ctrl-C (workers killed mid-put) it has,
        # now and then under load, printed two "leaked semaphore" warnings while doing exactly that —
        # noise after the one line an interrupted ingest promises. The tracker takes its warning options
        # from ours when it starts (first queue below), so its cleanup stays and only that chatter goes.
        if _QUIET_TRACKER not in sys.warnoptions:
            sys.warnoptions.append(_QUIET_TRACKER)
        ctx = mp.get_context("spawn")
        self._tasks = ctx.Queue()
        self._results = ctx.Queue(maxsize=2 * n)
        args = (self._tasks, self._results, batch_rows, max_line_bytes, os.getpid())
        self._procs = [ctx.Process(target=_worker_main, args=args, daemon=True) for _ in range(n)]
        for p in self._procs:
            p.start()

    def submit(self, units: list[Unit]) -> None:
        """Queue units now; their results are collected by :meth:`results`."""
        for u in units:
            self._tasks.put(u)

    def results(self, uids: set[int]) -> Iterator[Message]:
        """Messages of the submitted units until each of ``uids`` is done or failed."""
        pending = set(uids)
        while pending:
            try:
                msg = self._results.get(timeout=1.0)
            except queue.Empty:
                if not any(p.is_alive() for p in self._procs):
                    for uid in sorted(pending):
                        yield ("error", uid, "parser process died")
                    return
                continue
            if msg[0] in ("done", "error"):
                pending.discard(msg[1])
            yield _from_wire(msg)

    def terminate(self) -> None:
        """Stop the workers now (an interrupted ingest): their half-parsed units are dropped."""
        self._tasks.cancel_join_thread()  # never wait at exit to hand them tasks they will not run
        for p in self._procs:
            p.kill()
        for p in self._procs:
            p.join(timeout=5)

    def close(self) -> None:
        for _ in self._procs:
            self._tasks.put(None)
        for p in self._procs:
            p.join(timeout=5)
            if p.is_alive():
                p.terminate()
