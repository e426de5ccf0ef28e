"""Where a live runner's events land in the store: a run of a chain family, one node and one source per live
source (:class:`bftscope.ingest.live.EventSink`).

A family's live decoder yields rows of the neutral event model (:data:`bftscope.model.ROW_SCHEMA`), as an
Arrow table or as mappings of column → value; they are appended to the run exactly as parsed files are. Time
a source was not observed (a lost connection, until it came back or the runner stopped) is stored as an
``observation_gap`` event on that source's node — ``ts`` its start, ``extra`` its end and reason — so that an
answer depending on that time can say "unknown" instead of "missing".

Analytics stay current incrementally (docs/live.md "Live analytics"): the sink remembers the lowest height
its new events touched, and :meth:`StoreSink.update` — called by :meth:`~StoreSink.flush`, and by
:meth:`~StoreSink.write` in a thread of its own when a new height begins (the previous one is complete), at
most every ``update_every_s`` — replaces the derived rows of those heights only
(:func:`bftscope.ingest.derived.refresh`).
The rollups, which are recomputed over the run's retained events, are refreshed at most every
``rollups_every_s`` times the number of live runs writing to the store (so many followed networks spend on
them what one would); an update in between drops them, so answers are computed live, never stale. The run's
``derived_version`` is cleared before the first event after an update is stored and set again only by an
update during which no event arrived, so a reader never takes stale answers for current ones.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from bftscope.errors import BftscopeError
from bftscope.families import registry
from bftscope.ingest import derived
from bftscope.ingest.live import Gap
from bftscope.model import OBSERVATION_GAP, ROW_SCHEMA
from bftscope.store.base import Store

__all__ = ["ACTIVE_S", "NO_HEIGHT", "StoreSink", "live_runs"]

log = logging.getLogger(__name__)

# The pending "lowest height" when only events without a height arrived: the update reads just those.
NO_HEIGHT = 1 << 62

# A sink counts as one of its store's live runs while it wrote within this many seconds (its own clock).
ACTIVE_S = 30.0
_SINKS: weakref.WeakKeyDictionary[Store, dict[int, weakref.ref[StoreSink]]] = weakref.WeakKeyDictionary()
_SINKS_GUARD = threading.Lock()


def _register(sink: StoreSink) -> None:
    with _SINKS_GUARD:
        sinks = _SINKS.setdefault(sink.store, {})
        for key in [k for k, ref in sinks.items() if ref() is None]:
            del sinks[key]
        sinks[id(sink)] = weakref.ref(sink)


def live_runs(store: Store) -> int:
    """How many live runs wrote to ``store`` lately (within ``ACTIVE_S``): they share its rollup refreshes."""
    with _SINKS_GUARD:
        sinks = [ref() for ref in _SINKS.get(store, {}).values()]
    return sum(1 for s in sinks if s is not None and s.clock() - s._last_write <= ACTIVE_S)


@dataclass
class _Source:
    node: int
    source_id: int
    events: int = 0


@dataclass
class StoreSink:
    """Appends each live source's events to run ``run`` (created for ``chain`` if new) of ``store``.

    ``update_every_s``: the least time between two updates that :meth:`write` starts itself, in a thread, when a
    new height begins; ``None``: only :meth:`flush`, :meth:`keep_current` and explicit :meth:`update` calls
    update. ``rollups_every_s``: the least time between two refreshes of the rollups (they are recomputed over
    the run's retained events), times the live runs writing to the store (:func:`live_runs`); an update in
    between drops them and answers are computed live until the next one. ``clock``: monotonic seconds.
    """

    store: Store
    run: str
    chain: str
    update_every_s: float | None = 5.0
    rollups_every_s: float = 60.0
    clock: Callable[[], float] = time.monotonic
    updates: int = 0  # updates done (incremental or full)
    full_updates: int = 0  # of which full rebuilds (a run not current when the sink began, a failed update)
    update_errors: int = 0  # updates started by write() that failed (logged; the next one rebuilds everything)
    # Rows are written at most this long after they arrive, together with every other live run's of the store
    # (one insert instead of one per network and flush); None: each write at once.
    hold_s: float | None = 0.1
    derive_budget: float = 0.3  # the most of the store's time background updates (of all its live runs) take
    updates_deferred: int = 0  # updates write() put off because the store's budget was spent
    _sources: dict[str, _Source] = field(default_factory=dict)
    _run_id: int | None = None
    _stale: bool = False  # events were added since the derived tables were last brought up to date
    _pending: int | None = None  # lowest height of the events added since (NO_HEIGHT: none had one)
    _incremental: bool | None = None  # the derived rows are current below _pending (None: not known yet)
    # the run holds an event of a kind the family's derive reads (None: not looked yet; the first update looks)
    _derivable: bool | None = None
    _writes: int = 0
    _last_write: float = float("-inf")
    _top: int | None = None  # highest height written
    _last_update: float = float("-inf")
    _last_rollups: float = float("-inf")
    _rollups_cost: float = 0.0  # seconds the last update with rollups took
    _rollups_dropped: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _updating: threading.Lock = field(default_factory=threading.Lock)
    _worker: threading.Thread | None = None

    def _source(self, name: str) -> _Source:
        src = self._sources.get(name)
        if src is None:
            family = registry.family(self.chain)
            if self._run_id is None:
                self._run_id = self.store.get_or_create_run(self.run, self.chain).id
            node = family.resolve_node(self.store, self._run_id, family.new_identity(), name, None)
            key = f"live:{name}"
            record = self.store.find_source(self._run_id, key)
            if record is None:
                # Complete from the start: a stream has no end to wait for, and a source left "ingesting" by a
                # process that died would be discarded, events and all, when the store is opened again.
                record = self.store.begin_source(self._run_id, node.node, key, "live", key, 0)
                self.store.finish_source(record.id, lines=0, events=0, skipped={}, warnings=[])
            # a resumed run goes on counting (what a process that died appended was never counted: count it)
            (held,) = self.store.query("SELECT count(*) FROM events WHERE run_id = ? AND source = ?",
                                       [self._run_id, record.id])[0]  # fmt: skip
            src = self._sources[name] = _Source(node.node, record.id, max(record.events, int(held)))
        return src

    def write(self, source: str, events: Sequence[Any]) -> None:
        if not events:
            return
        table = events[0] if len(events) == 1 and isinstance(events[0], pa.Table) else _table(events)
        table = table.cast(ROW_SCHEMA)
        bounds = pc.min_max(table.column("height"))
        lo, hi = bounds["min"].as_py(), bounds["max"].as_py()
        reads = getattr(registry.family(self.chain), "derived_from_kinds", None)
        derivable = reads is None or not set(pc.unique(table.column("kind")).to_pylist()).isdisjoint(reads)
        src = self._source(source)
        assert self._run_id is not None
        if self._last_write == float("-inf"):
            _register(self)
        self._last_write = self.clock()
        with self._lock:
            if self._incremental is None:  # a run resumed by a new sink: incremental only if it was current
                self._incremental = derived.is_current(self.store, self._run_id)
            if not self._stale:  # as the batch pipeline: derived tables are not current once events change
                self.store.set_derived_version(self._run_id, None)
                self._stale = True
            src.events += self.store.append_events(self._run_id, src.node, src.source_id, table,
                                                   hold_partial=self.hold_s is not None, max_hold_s=self.hold_s)
            self._writes += 1
            if derivable:
                self._derivable = True
            low = NO_HEIGHT if lo is None else int(lo)
            self._pending = low if self._pending is None else min(self._pending, low)
            began = hi is not None and self._top is not None and int(hi) > self._top
            if hi is not None:
                self._top = int(hi) if self._top is None else max(self._top, int(hi))
        every = self.update_every_s
        if began and every is not None and self.clock() - self._last_update >= every:
            # Many live runs on one store: derives hold the store's writer, so they get a share of its time and
            # the events' own writes the rest; an update skipped here is done at a later height.
            if derived.busy_share(self.store) < self.derive_budget:
                self._start_worker()
            else:
                self.updates_deferred += 1

    def _start_worker(self) -> None:
        """Update in a thread of its own: the writer (a follower's event loop) goes on at once."""
        with self._lock:
            if self._worker is not None and self._worker.is_alive():
                return  # the next height that begins after it ends starts the next one
            self._worker = threading.Thread(target=self._update_logged, name=f"bftscope-live-{self.run}",
                                            daemon=True)  # fmt: skip
            self._worker.start()

    def _update_logged(self) -> None:
        try:
            self.update()
        except BftscopeError as exc:  # the events are stored; the next update rebuilds what this one could not
            self.update_errors += 1
            log.warning("live run %s: analytics update failed (%s); the next one rebuilds", self.run, exc)

    def wait(self) -> None:
        """Wait for an update that :meth:`write` started to end."""
        worker = self._worker
        if worker is not None:
            worker.join()

    def gap(self, gap: Gap) -> None:
        row = {"ts": int(gap.start * 1e9), "kind": OBSERVATION_GAP,
               "extra": json.dumps({"end_ns": int(gap.end * 1e9), "reason": gap.reason})}  # fmt: skip
        self.write(gap.source, [row])

    def update(self, *, rollups: bool | None = None) -> bool:
        """Bring the run's derived tables and rollups up to date with the events written so far; True when it
        did work. Incremental from the lowest new height unless the run was not current to begin with. The
        rollups are refreshed when ``rollups`` is True, or (None) when ``rollups_every_s`` has passed."""
        with self._updating:
            if rollups is None:
                # at most every rollups_every_s per live run of the store (they share it), and never more than a
                # tenth of the time (they grow with the run)
                every = self.rollups_every_s * max(1, live_runs(self.store))
                rollups = self.clock() - self._last_rollups >= max(every, 10 * self._rollups_cost)
            with self._lock:
                if self._run_id is None:
                    return False
                run_id, pending, writes = self._run_id, self._pending, self._writes
                if not self._stale:
                    if not (rollups and self._rollups_dropped):
                        return False
                    pending = NO_HEIGHT  # nothing new: only the dropped rollups are computed again
                incremental = bool(self._incremental)
                self._pending = None
            self.store.flush_events()
            began = self.clock()
            try:
                derive = not incremental or self._derive_reads(run_id)
                derived.refresh(self.store, run_id, pending if incremental else None, rollups=rollups, derive=derive)
            except BaseException:
                with self._lock:  # nothing is known to be right any more: the next update rebuilds everything
                    self._incremental = False
                    if pending is not None:
                        self._pending = pending if self._pending is None else min(self._pending, pending)
                raise
            with self._lock:
                self.updates += 1
                self.full_updates += not incremental
                self._incremental = True
                self._last_update = self.clock()
                self._rollups_dropped = not rollups
                if rollups:
                    self._last_rollups = self._last_update
                    self._rollups_cost = self._last_update - began
                if self._writes == writes:  # else events came meanwhile: still stale, _pending holds their heights
                    self.store.set_derived_version(run_id, registry.family(self.chain).derived_version)
                    self._stale = False
            return True

    def _derive_reads(self, run_id: int) -> bool:
        """Whether the run holds an event of a kind the family's derive reads. A followed network's events are
        none of them (CometBFT: votes added, steps, commits — no received messages), and the derive's scans
        then hold the store's writer only to find nothing; looked up once, then kept by :meth:`write`."""
        reads = getattr(registry.family(self.chain), "derived_from_kinds", None)
        if reads is None:
            return True
        if self._derivable is None:
            marks = ", ".join("?" * len(reads))
            (held,) = self.store.query(f"SELECT EXISTS (SELECT 1 FROM events WHERE run_id = ? AND kind IN ({marks}))",
                                       [run_id, *sorted(reads)])[0]  # fmt: skip
            with self._lock:
                self._derivable = bool(held) or bool(self._derivable)
        return bool(self._derivable)

    async def keep_current(self, interval_s: float = 5.0,
                           sleep: Callable[[float], Awaitable[object]] = asyncio.sleep) -> None:  # fmt: skip
        """Update every ``interval_s`` in a worker thread (also what late events of old heights alone, which
        start no height, need); runs until cancelled."""
        while True:
            await sleep(interval_s)
            await asyncio.to_thread(self._update_logged)

    def flush(self) -> None:
        """Close every source with its count, then bring the run's derived tables and rollups up to date."""
        self.wait()
        self.store.flush_events()
        for src in self._sources.values():
            self.store.finish_source(src.source_id, lines=src.events, events=src.events, skipped={}, warnings=[])
        self.update(rollups=True)


def _table(rows: Sequence[Mapping[str, Any]]) -> pa.Table:
    # Arrow builds the columns from the mappings itself (about 3x faster than a list per column in Python);
    # a column a row does not name is NULL.
    return pa.Table.from_pylist(list(rows), schema=ROW_SCHEMA)
