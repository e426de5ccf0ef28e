"""Where a Casper follower's events go: :class:`CasperSink`, an :class:`~bftscope.ingest.live.EventSink` that
stores them through :class:`~bftscope.families.casper.store.CasperStore` and hands each write's new entities
to its listeners (the publisher).

Followers run in an event loop and must not wait on the store, so :meth:`CasperSink.write` only appends to a
buffer; one writer thread takes whatever has accumulated every ``flush_s`` (or at once when ``max_batch``
events wait) and writes it as one batch — many small arrivals from many nodes become one transaction. When the
store falls behind by ``max_pending`` events, ``write`` waits for it (back-pressure instead of unbounded memory).
A failed write is retried; a batch that fails ``retries`` times is counted in ``write_errors`` with its size and
logged, never silently dropped.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bftscope.families.casper.model import CasperEvent
from bftscope.families.casper.store import CasperStore, Stored, WriteResult
from bftscope.ingest.live import Gap
from bftscope.store.base import Store

__all__ = ["CasperSink", "SinkStats"]

log = logging.getLogger(__name__)

Listener = Callable[[list[Stored]], None]


@dataclass
class SinkStats:
    received: int = 0
    new_events: int = 0
    duplicate_events: int = 0
    duplicate_entities: int = 0
    conflicts: int = 0
    stored: int = 0
    writes: int = 0
    write_errors: int = 0
    lost_events: int = 0  # in batches that failed every retry
    gaps: int = 0
    last_write_s: float = 0.0

    def add(self, res: WriteResult) -> None:
        self.received += res.received
        self.new_events += res.new_events
        self.duplicate_events += res.duplicate_events
        self.duplicate_entities += res.duplicate_entities
        self.conflicts += res.conflicts
        self.stored += len(res.stored)
        self.writes += 1


@dataclass
class CasperSink:
    """Stores the Casper events of run ``run`` (created with chain ``chain`` if new) of ``store``."""

    store: Store
    run: str
    chain: str = "casper"
    flush_s: float = 0.02
    max_batch: int = 5000
    max_pending: int = 200_000
    retries: int = 3
    stats: SinkStats = field(default_factory=SinkStats)
    gaps: list[Gap] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.run_id = self.store.get_or_create_run(self.run, self.chain).id
        self.writer = CasperStore(self.store, self.run_id)
        self._pending: list[CasperEvent] = []
        self._cond = threading.Condition()
        self._busy = False
        self._closed = False
        self._listeners: list[Listener] = []
        self._thread = threading.Thread(target=self._loop, name=f"casper-sink:{self.run}", daemon=True)
        self._thread.start()

    def listen(self, callback: Listener) -> Callable[[], None]:
        """Call ``callback`` with each write's new entities (from the writer thread); returns an unsubscribe."""
        self._listeners.append(callback)
        return lambda: self._listeners.remove(callback) if callback in self._listeners else None

    def write(self, source: str, events: Sequence[Any]) -> None:
        evs = [e for e in events if isinstance(e, CasperEvent) and e.type != "ApiVersion"]
        if not evs:
            return
        with self._cond:
            while len(self._pending) >= self.max_pending and not self._closed:
                self._cond.wait(0.1)  # the store is behind: hold the follower back rather than grow without bound
            self._pending.extend(evs)
            if len(self._pending) >= self.max_batch:
                self._cond.notify_all()

    def gap(self, gap: Gap) -> None:
        """A node's connection was lost (its events resume from ``start_from``; kept for its status)."""
        self.gaps.append(gap)
        del self.gaps[:-100]
        self.stats.gaps += 1

    def flush(self) -> None:
        """Return once everything written so far is stored (or counted as lost)."""
        with self._cond:
            self._cond.notify_all()
            while (self._pending or self._busy) and self._thread.is_alive():
                self._cond.wait(0.05)
        if not self._thread.is_alive():
            self._drain()

    def close(self) -> None:
        self.flush()
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout=10)

    def _loop(self) -> None:
        while True:
            with self._cond:
                if not self._pending and not self._closed:
                    self._cond.wait(self.flush_s)
                if self._closed and not self._pending:
                    return
                if not self._pending:
                    continue
                if len(self._pending) < self.max_batch and not self._closed:
                    self._cond.wait(self.flush_s)  # let arrivals gather into one batch
                batch, self._pending = self._pending[: self.max_batch * 4], self._pending[self.max_batch * 4 :]
                self._busy = True
                self._cond.notify_all()
            try:
                self._store(batch)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _drain(self) -> None:
        with self._cond:
            batch, self._pending = self._pending, []
        if batch:
            self._store(batch)

    def _store(self, batch: list[CasperEvent]) -> None:
        for attempt in range(1, self.retries + 1):
            started = time.perf_counter()
            try:
                res = self.writer.write(batch)
            except Exception as exc:  # any store failure: counted, retried, then the batch is counted as lost
                self.stats.write_errors += 1
                log.warning("casper run %s: storing %d events failed (attempt %d of %d): %s", self.run, len(batch),
                            attempt, self.retries, exc)  # fmt: skip
                time.sleep(min(1.0, 0.05 * 2**attempt))
                continue
            self.stats.last_write_s = time.perf_counter() - started
            self.stats.add(res)
            if res.stored:
                for listener in list(self._listeners):
                    try:
                        listener(res.stored)
                    except Exception:  # a listener's bug must not stop storage
                        log.exception("casper run %s: a listener failed", self.run)
            return
        self.stats.lost_events += len(batch)
        log.error("casper run %s: %d events could not be stored after %d attempts", self.run, len(batch), self.retries)
