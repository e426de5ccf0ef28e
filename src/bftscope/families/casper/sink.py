"""Where a Casper follower's events go: :class:`CasperSink`, an :class:`~bftscope.ingest.live.EventSink` that
stores them through :class:`~bftscope.families.casper.store.CasperStore` and hands each write's new entities
to its listeners (the publisher).

Followers run in an event loop and must not wait on the store, so :meth:`CasperSink.write` only appends to a
buffer; one writer thread, woken by the first events to arrive while it is idle, writes what has accumulated as
one batch — what arrives while it writes one batch forms the next (a group commit), so under load many small
arrivals from many nodes become one transaction without any waiting (``flush_s`` > 0 would hold an idle
writer back that long to gather more; at once when ``max_batch`` events wait). When the store falls behind by
``max_pending`` events, ``write`` waits for it (back-pressure instead of unbounded memory).
A failed write is retried; a batch that fails ``retries`` times is counted in ``write_errors`` with its size and
logged, never silently dropped.

With a store on disk (``store.files_dir``), writes go through the network's journal (:mod:`.journal`,
docs/casper.md "Journal"): the writer thread decides each batch (:meth:`CasperStore.plan`), appends the decisions
(:class:`~.rows.Decided`: the new events and which are new entities) to the journal, syncs it and publishes —
the batch is durable and its subscribers have it — and an applier thread builds the journaled batches' rows and
inserts them into the store every ``apply_s`` in one transaction, recording the last record it includes.
DuckDB's commits and checkpoints then cost the store's readers a short lag (REST answers an entity ``apply_s``
plus one insert after its subscribers got it), never the subscribers. Opening the sink first applies what the
journal holds beyond the store (a crash between the two), exactly once. An insert that fails is retried until
it succeeds (the rows are safe in the journal; ``apply_errors`` counts the failures); at most ``max_unapplied``
events wait for the store before the writer waits.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bftscope.families.casper.journal import Journal
from bftscope.families.casper.model import CasperEvent
from bftscope.families.casper.rows import encode_record, record_tables, tables_of
from bftscope.families.casper.store import CasperStore, Plan, Stored, WriteResult
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
    # the journal (docs/casper.md "Journal")
    applied: int = 0  # events whose rows are in the store
    applies: int = 0
    apply_errors: int = 0
    last_apply_s: float = 0.0
    recovered_records: int = 0  # journal records applied when the sink opened (a crash before they were)
    journal_torn_bytes: int = 0
    journal_corrupt_files: int = 0

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
    # 0: group commit. bench/casper_bench.py, 21,000 events/s, 60 s, interleaved: p50 12-17 ms and p99 68-134 ms
    # with 0, p50 19-27 and p99 76-131 with 5 ms; p99 140-260 ms over 20 s with 20 ms
    flush_s: float = 0.0
    max_batch: int = 5000
    max_pending: int = 200_000
    retries: int = 3
    journal: bool | None = None  # None: when the store has a place on disk
    apply_s: float = 0.2
    max_unapplied: int = 200_000
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
        files = getattr(self.store, "files_dir", None)
        self._journal: Journal | None = None
        self._unapplied: list[tuple[int, Plan]] = []  # journaled, not yet in the store: (seq, plan)
        self._unapplied_events = 0
        self._applying = False
        self._hurry = False  # flush() waits: apply now
        self._apply_failures = 0  # inserts failed in a row
        if self.journal is not False and files is not None:
            self._journal = self._open_journal(files / "casper-journal" / str(self.run_id))
        live = getattr(self.store, "live_writer", None)  # DuckDB tunes itself for a live writer meanwhile
        self._end_live: Callable[[], None] = live() if live is not None else (lambda: None)
        if self._journal is not None:
            self._applier = threading.Thread(target=self._apply_loop, name=f"casper-apply:{self.run}", daemon=True)
            self._applier.start()
        self._thread = threading.Thread(target=self._loop, name=f"casper-sink:{self.run}", daemon=True)
        self._thread.start()

    @property
    def journaled(self) -> bool:
        """Writes are made durable in the journal and inserted into the store by another thread."""
        return self._journal is not None

    def _open_journal(self, directory: Any) -> Journal:
        """Open the run's journal and apply what it holds beyond the store."""
        # no wait for another writer of the network (a sink still closing): this runs on the server's event loop,
        # and the supervisor makes the follower again after its backoff
        journal = Journal(directory, self.writer.journal_applied(), wait_s=0.0)
        try:
            return self._recover(journal)
        except BaseException:
            journal.close()  # its lock is released: the next attempt may open it
            raise

    def _recover(self, journal: Journal) -> Journal:
        self.stats.journal_torn_bytes = journal.report.torn_bytes
        self.stats.journal_corrupt_files = journal.report.corrupt_files
        last = 0
        for seq, payload in journal.pending():
            try:
                tables = record_tables(payload)
            except ValueError as exc:  # it passed its checksum: written by another version, not damaged
                log.error("casper run %s: journal record %d cannot be read (%s); it is not applied", self.run, seq,
                          exc)  # fmt: skip
                self.stats.journal_corrupt_files += 1
                continue
            self.writer.insert([tables], seq)
            self.stats.recovered_records += 1
            last = seq
        if last:
            journal.applied(last)
            log.warning("casper run %s: applied %d journal records the store did not hold yet", self.run,
                        self.stats.recovered_records)  # fmt: skip
        return journal

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
            if not self._pending or len(self._pending) + len(evs) >= self.max_batch:
                self._cond.notify_all()  # an idle writer starts; a full batch goes at once
            self._pending.extend(evs)

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
            if self._journal is not None:
                # the store keeps refusing: what is left is safe in the journal (and tried again)
                self._settle(give_up=lambda: self._apply_failures >= self.retries)
        if not self._thread.is_alive():
            self._drain()

    def close(self) -> None:
        self.flush()
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout=10)
        if self._journal is not None:
            self._applier.join(timeout=10)
            self._journal.close()
        self._end_live()

    def _loop(self) -> None:
        while True:
            with self._cond:
                if not self._pending and not self._closed:
                    self._cond.wait(1.0)  # write() wakes it
                if self._closed and not self._pending:
                    return
                if not self._pending:
                    continue
                if self.flush_s > 0 and len(self._pending) < self.max_batch and not self._closed:
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
                res = self.writer.write(batch) if self._journal is None else self._journaled(batch)
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

    def _journaled(self, batch: list[CasperEvent]) -> WriteResult:
        """Decide the batch, make it durable in the journal and queue it for the store; its result is published
        at once by the caller."""
        assert self._journal is not None
        with self._cond:
            while self._unapplied_events >= self.max_unapplied and self._applier.is_alive():
                self._cond.wait(0.1)  # the store is behind: the journal holds enough
        try:
            plan = self.writer.plan(batch)
            if plan.decided is None:  # nothing new to any node's channel: nothing to insert
                return plan.result
            seq = self._journal.append(encode_record(plan.decided))
        except BaseException:
            # not durable: forget what was learnt from it once the store holds every plan before it (what the
            # writer remembers must never be less than the store and the journal hold)
            self._settle()
            self.writer.reset()
            raise
        with self._cond:
            self._unapplied.append((seq, plan))
            self._unapplied_events += plan.result.received
            self._cond.notify_all()
        return plan.result

    def _settle(self, give_up: Callable[[], bool] = lambda: False) -> None:
        """Wait until every journaled plan is in the store (or ``give_up`` says to stop waiting)."""
        with self._cond:
            while (self._unapplied or self._applying) and self._applier.is_alive() and not give_up():
                self._hurry = True
                self._cond.notify_all()
                self._cond.wait(0.05)

    def _apply_loop(self) -> None:
        assert self._journal is not None
        while True:
            with self._cond:
                while not self._unapplied and not self._closed:
                    self._cond.wait(1.0)
                if not self._unapplied and self._closed:
                    return
                due = time.monotonic() + self.apply_s  # gather a few writes into one transaction
                while not (self._closed or self._hurry or self._unapplied_events >= self.max_unapplied // 4):
                    left = due - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)
                self._hurry = False
                taken = list(self._unapplied)
                self._applying = True
            try:
                self._apply(taken)
            finally:
                with self._cond:
                    del self._unapplied[: len(taken)]
                    self._unapplied_events -= sum(p.result.received for _, p in taken)
                    self._applying = False
                    self._cond.notify_all()

    def _apply(self, taken: list[tuple[int, Plan]]) -> None:
        """Insert journaled plans until the store has them (they are safe in the journal meanwhile)."""
        assert self._journal is not None
        attempt = 0
        rows: list[dict[str, Any]] | None = None
        while True:
            started = time.perf_counter()
            try:
                if rows is None:  # built once, here, off the subscribers' path: the writer journaled the decisions
                    rows = [tables_of(p.decided) for _, p in taken if p.decided is not None]
                self.writer.insert(rows, taken[-1][0])
                self._apply_failures = 0
                break
            except Exception as exc:
                attempt += 1
                self._apply_failures += 1
                self.stats.apply_errors += 1
                if self._closed and attempt >= self.retries:
                    log.error("casper run %s: closing with %d journaled writes not in the store; they are applied "
                              "when the network is opened again", self.run, len(taken))  # fmt: skip
                    return
                log.warning("casper run %s: inserting %d journaled writes failed (attempt %d; they are kept in the "
                            "journal and tried again): %s", self.run, len(taken), attempt, exc)  # fmt: skip
                time.sleep(min(1.0, 0.05 * 2**attempt))
        self.writer.done([p for _, p in taken])
        self._journal.applied(taken[-1][0])
        self.stats.applies += 1
        self.stats.applied += sum(p.result.received for _, p in taken)
        self.stats.last_apply_s = time.perf_counter() - started
