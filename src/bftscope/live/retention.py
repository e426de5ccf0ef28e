"""Retention of live runs: what a network followed for months keeps, pruned by age in the background.

A live run keeps its raw data — events and the rows derived from them — for the raw window
(``BFTSCOPE_RETENTION_RAW_DAYS``, 7 days), and its per-height summaries (validator history, …) for the
summary window (``BFTSCOPE_RETENTION_SUMMARY_DAYS``, a year). Which table is which is the run's chain
family's (:meth:`~bftscope.families.base.ChainFamily.retention_tables`); this module names no family.

Data is cut at a **height**, never inside one: the raw cut is the lowest height that still has an event
inside the window (every height below it has all its events older), and every raw table loses the rows of
the heights below it together, a batch of heights per transaction — so a height's events and its derived
rows go at once, and the derived rows left are exactly those a rebuild of the events left would give (the
rollups are refreshed after a prune that removed raw rows). Rows without a height are aged by their own
time column. Each raw cut is remembered (``retention_marks``: heights below ``height`` were older than
``ts``), which dates heights whose events are gone, so the summary cut can be found a year later.

Only live runs are pruned — runs whose every source is a live one (``sources.format = 'live'``), or runs of
a family that only follows networks (``ChainFamily.live_only``). An uploaded run is never touched. A family
whose data is not cut at a height prunes its runs its own way (``ChainFamily.prune_run``, e.g. by age and by
size); the pass counts and reports what it removed per table like the rest. Pruning again with nothing older
is a no-op; rows appended meanwhile belong to heights above the cut and are never removed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from bftscope.config import Settings
from bftscope.errors import BftscopeError
from bftscope.families import registry
from bftscope.families.base import RetainedTable
from bftscope.store.base import Store

__all__ = ["PruneResult", "Pruner", "StoreSize", "is_live", "live_runs", "prune", "store_size"]

log = logging.getLogger(__name__)

_IDENT = re.compile(r"^[a-z_][a-z0-9_]*$")
_DAY_S = 86_400.0


@dataclass
class PruneResult:
    """What one prune of one run removed: rows per table, and where it cut."""

    run_id: int
    removed: dict[str, int] = field(default_factory=dict)
    raw_cut_height: int | None = None  # heights below it lost their raw rows (None: nothing old enough)
    summary_cut_height: int | None = None
    skipped: str | None = None  # why the run was left alone (not a live run)
    kept: dict[str, int] = field(default_factory=dict)  # rows the family wrote to keep of the heights cut

    @property
    def total(self) -> int:
        return sum(self.removed.values())


@dataclass
class StoreSize:
    """A live run's size: rows per table it holds, and its estimated share of the store file in bytes."""

    rows: dict[str, int]
    bytes_estimate: int | None


def _live(chain: str, sources: int, live: int) -> bool:
    if sources:
        return sources == live
    try:  # a run without sources: live when its family only follows networks
        return registry.family(chain).live_only
    except BftscopeError:
        return False


def is_live(store: Store, run_id: int) -> bool:
    """A run whose every source is a live one, or a run of a family whose every run is followed (uploaded and
    ingested runs are never pruned)."""
    rows = store.query(
        "SELECT r.chain, count(s.id), count(s.id) FILTER (WHERE s.format = 'live') FROM runs r "
        "LEFT JOIN sources s ON s.run_id = r.id WHERE r.id = ? GROUP BY r.chain", [run_id]
    )
    return bool(rows) and _live(str(rows[0][0]), int(rows[0][1]), int(rows[0][2]))


def live_runs(store: Store) -> list[int]:
    """Ids of the store's live runs."""
    rows = store.query(
        "SELECT r.id, r.chain, count(s.id), count(s.id) FILTER (WHERE s.format = 'live') FROM runs r "
        "LEFT JOIN sources s ON s.run_id = r.id GROUP BY r.id, r.chain"
    )
    return sorted(int(r[0]) for r in rows if _live(str(r[1]), int(r[2]), int(r[3])))


def _tables(store: Store, run_id: int) -> list[RetainedTable]:
    """The family's retained tables that exist in this store (another part may not have created its own yet)."""
    present = {str(r[0]) for r in store.query("SELECT table_name FROM information_schema.tables")}
    out = []
    for t in registry.family_of_run(store, run_id).retention_tables():
        for name in (t.name, t.height, t.ts):
            if name is not None and not _IDENT.match(name):
                raise ValueError(f"not a table or column name: {name!r}")
        if t.name in present:
            out.append(t)
    return out


def _cut_height(store: Store, run_id: int, cut_ns: int) -> int | None:
    """The lowest height with an event at or after ``cut_ns``; past the highest when every event is older;
    None for a run without heights."""
    (low,) = store.query(
        "SELECT min(height) FROM events WHERE run_id = ? AND ts >= ? AND height IS NOT NULL", [run_id, cut_ns]
    )[0]
    if low is not None:
        return int(low)
    (top,) = store.query("SELECT max(height) FROM events WHERE run_id = ?", [run_id])[0]
    return None if top is None else int(top) + 1


def _summary_cut(store: Store, run_id: int, cut_ns: int, raw_cut: int | None) -> int | None:
    """The lowest height whose summaries are kept: from the marks of earlier cuts older than ``cut_ns``, or
    from the events when they still reach back that far."""
    (marked,) = store.query("SELECT max(height) FROM retention_marks WHERE run_id = ? AND ts <= ?",
                            [run_id, cut_ns])[0]  # fmt: skip
    (oldest,) = store.query("SELECT min(ts) FROM events WHERE run_id = ?", [run_id])[0]
    from_events = _cut_height(store, run_id, cut_ns) if oldest is not None and oldest <= cut_ns else None
    cuts = [int(h) for h in (marked, from_events) if h is not None]
    if not cuts:
        return None
    return min(max(cuts), raw_cut) if raw_cut is not None else max(cuts)


def _delete(store: Store, table: str, where: str, params: dict[str, int]) -> int:
    """Remove the rows of ``table`` matching ``where``; returns how many (inside the caller's transaction)."""
    (n,) = store.execute(f"SELECT count(*) FROM {table} WHERE {where}", params)[0]
    if n:
        store.execute(f"DELETE FROM {table} WHERE {where}", params)
    return int(n)


def _prune_raw(store: Store, run_id: int, tables: Sequence[RetainedTable], cut: int, cut_ns: int,
               batch: int, removed: dict[str, int]) -> None:  # fmt: skip
    by_height = [t for t in tables if t.height is not None]
    (low,) = store.query("SELECT min(height) FROM events WHERE run_id = ?", [run_id])[0]
    lows = [int(low)] if low is not None else []
    for t in by_height:  # a derived table may hold heights whose events are already gone
        (h,) = store.query(f"SELECT min({t.height}) FROM {t.name} WHERE run_id = ?", [run_id])[0]
        if h is not None:
            lows.append(int(h))
    upper = min(lows, default=cut)
    while upper < cut:  # a batch of heights per transaction: a height's events and derived rows go together
        upper = min(upper + batch, cut)
        with store.transaction():
            for t in by_height:
                n = _delete(store, t.name, f"run_id = :run AND {t.height} < :cut", {"run": run_id, "cut": upper})
                removed[t.name] = removed.get(t.name, 0) + n
    with store.transaction():  # rows without a height, by their own time
        for t in tables:
            if t.ts is None:
                continue
            where = f"run_id = :run AND {t.ts} < :ts" + (f" AND {t.height} IS NULL" if t.height else "")
            n = _delete(store, t.name, where, {"run": run_id, "ts": cut_ns})
            removed[t.name] = removed.get(t.name, 0) + n


def _prune_summary(store: Store, run_id: int, tables: Sequence[RetainedTable], cut: int,
                   removed: dict[str, int]) -> None:  # fmt: skip
    with store.transaction():
        for t in tables:
            if t.height is None:
                continue
            where = f"run_id = :run AND {t.height} < :cut"
            if t.keep_last:  # the state in effect at the cut was written at the greatest height below it
                where += (f" AND {t.height} < (SELECT coalesce(max({t.height}), :cut) FROM {t.name}"
                          f" WHERE run_id = :run AND {t.height} <= :cut)")  # fmt: skip
            removed[t.name] = removed.get(t.name, 0) + _delete(store, t.name, where, {"run": run_id, "cut": cut})


def prune(store: Store, run_id: int, now: float, settings: Settings) -> PruneResult:
    """Remove what a live run holds beyond its retention windows at time ``now`` (Unix seconds); returns the
    rows removed per table. A run that is not live is left alone (``skipped`` says so)."""
    result = PruneResult(run_id)
    if not is_live(store, run_id):
        result.skipped = "not a live run: uploaded and ingested runs are never pruned"
        return result
    own = registry.family_of_run(store, run_id).prune_run(store, run_id, now, settings)
    if own is not None:  # the family prunes this run its own way (not by height)
        result.removed = {k: v for k, v in own.items() if v}
        return result
    tables = _tables(store, run_id)
    raw_ns = int((now - settings.retention_raw_days * _DAY_S) * 1e9)
    summary_ns = int((now - settings.retention_summary_days * _DAY_S) * 1e9)
    raw_cut = result.raw_cut_height = _cut_height(store, run_id, raw_ns)
    summary_cut = result.summary_cut_height = _summary_cut(store, run_id, summary_ns, raw_cut)
    if raw_cut is not None:
        # what outlives the events is written from them first; the mark below then points readers at it
        result.kept = registry.family_of_run(store, run_id).keep_before_prune(store, run_id, raw_cut)
        (marked,) = store.query("SELECT max(height) FROM retention_marks WHERE run_id = ?", [run_id])[0]
        if marked is None or raw_cut > marked:
            store.execute("INSERT INTO retention_marks VALUES (?, ?, ?)", [run_id, raw_cut, raw_ns])
        raw = [t for t in tables if t.tier == "raw"]
        _prune_raw(store, run_id, raw, raw_cut, raw_ns, settings.retention_batch_heights, result.removed)
    if summary_cut is not None:
        _prune_summary(store, run_id, [t for t in tables if t.tier == "summary"], summary_cut, result.removed)
        # the marks that dated what is gone: the latest before the cut still dates the rest
        store.execute("DELETE FROM retention_marks WHERE run_id = :run AND height < (SELECT max(height) FROM"
                      " retention_marks WHERE run_id = :run AND height <= :cut)",
                      {"run": run_id, "cut": summary_cut})  # fmt: skip
    result.removed = {k: v for k, v in result.removed.items() if v}
    if any(result.removed.get(t.name) for t in tables if t.tier == "raw"):
        # the whole-run answers covered what is gone: they now cover what is kept, as a rebuild would
        registry.family_of_run(store, run_id).refresh_rollups(store, run_id)
    return result


def store_size(store: Store, run_id: int, *, file_bytes: int | None = None) -> StoreSize:
    """Rows per retained table of the run, and (given the store file's size) the run's estimated share of it
    in bytes: the file's size in proportion to the run's rows among all rows of those tables."""
    rows: dict[str, int] = {}
    everyone = 0
    for t in _tables(store, run_id):
        mine, total = store.query(f"SELECT count(*) FILTER (WHERE run_id = ?), count(*) FROM {t.name}", [run_id])[0]
        rows[t.name] = int(mine)
        everyone += int(total)
    share = sum(rows.values()) / everyone if everyone else 0.0
    return StoreSize(rows, None if file_bytes is None else int(file_bytes * share))


class Pruner:
    """Prunes every live run of a store every ``settings.retention_interval_s`` seconds, in a thread so the
    event loop keeps serving. Totals removed per (run, table) are kept for ``/metrics``; a failed prune is
    logged and counted, never raised (the next pass tries again)."""

    def __init__(self, store: Store, settings: Settings, *, runs: Callable[[], Iterable[int]] | None = None,
                 clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], object] = asyncio.sleep) -> None:  # fmt: skip
        self.store = store
        self.settings = settings
        self._runs = runs or (lambda: live_runs(store))
        self._clock = clock
        self._sleep = sleep
        self.passes = 0
        self.errors = 0
        self.removed: dict[tuple[int, str], int] = {}
        self._stopping = False
        self._busy = threading.Lock()  # held while a pass runs (in a worker thread)

    def prune_once(self) -> list[PruneResult]:
        """One pass over the live runs (blocking)."""
        with self._busy:
            return self._pass()

    def _pass(self) -> list[PruneResult]:
        results = []
        for run_id in self._runs():
            try:
                result = prune(self.store, run_id, self._clock(), self.settings)
            except BftscopeError as exc:
                self.errors += 1
                log.warning("retention: pruning run %s failed (%s); the next pass retries", run_id, exc)
                continue
            for table, n in result.removed.items():
                self.removed[(run_id, table)] = self.removed.get((run_id, table), 0) + n
            if result.total:
                log.info("retention: run %s: removed %s", run_id, result.removed)
            results.append(result)
        self.passes += 1
        return results

    async def run(self) -> None:
        """Wait the interval, prune, again, until :meth:`stop` (or the task is cancelled). The first pass
        comes one interval after the start: a server starting must not wait for it."""
        while not self._stopping:
            await self._sleep(self.settings.retention_interval_s)  # type: ignore[misc]
            if self._stopping:
                break
            await asyncio.to_thread(self.prune_once)

    def stop(self) -> None:
        self._stopping = True

    def start(self) -> asyncio.Task[None]:
        """:meth:`run` as a task of the running event loop (see :meth:`close`)."""
        return asyncio.get_running_loop().create_task(self.run(), name="bftscope-retention")

    async def close(self, task: asyncio.Task[None]) -> None:
        """Stop the task started by :meth:`start` and wait for a pass in progress to end (its thread cannot be
        cancelled, and the store must outlive it)."""
        self.stop()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await asyncio.to_thread(self._wait_idle)

    def _wait_idle(self) -> None:
        with self._busy:
            pass
