"""One thread that enforces every query's time limit.

A ``threading.Timer`` per statement starts (and tears down) an OS thread each time: ~3–4 ms of a 2-core
machine per statement, which was a quarter of a Casper write of seven statements. :class:`Watchdog` keeps
the pending deadlines in a heap and one daemon thread sleeps until the earliest; a statement that ends in
time only marks its entry cancelled.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable

__all__ = ["Deadline", "Watchdog"]


class Deadline:
    """A pending call; :meth:`cancel` stops it if it has not fired."""

    __slots__ = ("cancelled", "fired")

    def __init__(self) -> None:
        self.cancelled = False
        self.fired = threading.Event()

    def cancel(self) -> None:
        self.cancelled = True


class Watchdog:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._heap: list[tuple[float, int, Deadline, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    def after(self, seconds: float, action: Callable[[], None]) -> Deadline:
        """Call ``action`` in ``seconds`` unless the returned deadline is cancelled first."""
        d = Deadline()
        with self._cond:
            heapq.heappush(self._heap, (self._clock() + seconds, next(self._seq), d, action))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="bftscope-query-watchdog", daemon=True)
                self._thread.start()
            elif self._heap[0][2] is d:
                self._cond.notify()  # a new earliest deadline
        return d

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._heap and self._heap[0][2].cancelled:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._cond.wait(5.0)
                    if not self._heap:
                        self._thread = None  # idle: the next ``after`` starts a new one
                        return
                    continue
                due, _, d, action = self._heap[0]
                wait = due - self._clock()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                heapq.heappop(self._heap)
            if not d.cancelled:
                d.fired.set()
                action()
