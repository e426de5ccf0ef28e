"""Whether a run's derived tables and rollups are current, and bringing them up to date.

Derived tables (vote arrivals, deliveries) and rollups are built from a run's events after its
sources are written. A process killed or interrupted between the two used to leave a run whose
sources were all marked ingested but whose derived tables were empty or stale — for good, since
re-ingesting found only duplicates. So the run records the version of what it holds
(``runs.derived_version``): it is cleared before any event of the run changes and written only
after both the derived tables and the rollups are complete (a live run between two rollup refreshes holds
none: its answers are then computed live, see :func:`refresh`). Whoever needs them — the next ingest
(even when every file is a duplicate), the CLI's readers, the API at start-up, ``bftscope
rebuild`` — calls :func:`ensure_current`, which rebuilds what is not current. Raising the family's
``derived_version`` (when what is derived changes) makes every older run rebuild the same way. What is
derived, and which rollups, is the run's chain family's (:mod:`bftscope.families.registry`).
"""

from __future__ import annotations

import contextlib
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from typing import Any

from bftscope.analytics import rollups as rollup_engine
from bftscope.errors import BftscopeError
from bftscope.families import registry
from bftscope.store.base import Store

__all__ = ["PHASES", "Phase", "build", "current_version", "ensure_current", "is_current", "rebuild_stale", "refresh"]

# The phases of an ingest: key in IngestResult.phases → label shown to people.
PHASES = {"parse_store": "parse and store", "derive": "derived tables", "rollups": "metric rollups"}
Phase = Callable[[str], None]  # called with the label of each phase after parsing, as it starts


# One derive at a time per store: derive steps use session-wide temporary tables of fixed names, so two live runs
# of one store updating in their own threads (several followed networks) would trip over each other's.
_DERIVE_LOCKS: weakref.WeakKeyDictionary[Store, threading.RLock] = weakref.WeakKeyDictionary()
_LOCKS_GUARD = threading.Lock()


# Seconds each store spent deriving, per window of BUSY_WINDOW_S: live sinks start a background update only while
# the store's share is under their budget, so that derives (whose statements hold the store's writer lock)
# never starve the writes of the events themselves when many networks share one store.
BUSY_WINDOW_S = 30.0
_BUSY: weakref.WeakKeyDictionary[Store, list[float]] = weakref.WeakKeyDictionary()  # [window start, busy s]


def derive_lock(store: Store) -> threading.RLock:
    """The lock every derive of ``store`` holds (re-entrant: a build may run inside a refresh's caller)."""
    with _LOCKS_GUARD:
        lock = _DERIVE_LOCKS.get(store)
        if lock is None:
            lock = _DERIVE_LOCKS[store] = threading.RLock()
        return lock


@contextlib.contextmanager
def _deriving(store: Store) -> Iterator[None]:
    with derive_lock(store):
        began = time.monotonic()
        try:
            yield
        finally:
            _add_busy(store, began, time.monotonic())


def _add_busy(store: Store, began: float, ended: float) -> None:
    with _LOCKS_GUARD:
        window = _BUSY.setdefault(store, [began, 0.0])
        if ended - window[0] > BUSY_WINDOW_S:  # a new window, carrying the last one's share at half weight
            share = window[1] / max(ended - window[0], BUSY_WINDOW_S)
            window[0], window[1] = ended - BUSY_WINDOW_S / 2, share * (BUSY_WINDOW_S / 2) / 2
        window[1] += ended - began


def busy_share(store: Store, now: float | None = None) -> float:
    """The share of recent wall time ``store`` spent deriving (0..1, over about the last ``BUSY_WINDOW_S``)."""
    now = time.monotonic() if now is None else now
    with _LOCKS_GUARD:
        window = _BUSY.get(store)
        if window is None:
            return 0.0
        return window[1] / max(now - window[0], BUSY_WINDOW_S / 2)


def current_version(chain: str) -> int:
    """The derived version a run of this chain has when its derived tables and rollups are current."""
    return registry.family(chain).derived_version


def is_current(store: Store, run_id: int) -> bool:
    return store.derived_version(run_id) == registry.family_of_run(store, run_id).derived_version


def build(
    store: Store, run_id: int, *, on_phase: Phase | None = None, phases: dict[str, float] | None = None
) -> dict[str, int]:
    """Rebuild the run's derived tables, then its rollups, then mark them current. Returns row counts;
    the seconds of each phase go into ``phases``."""
    with _deriving(store):
        return _build(store, run_id, on_phase, phases)


def _build(store: Store, run_id: int, on_phase: Phase | None, phases: dict[str, float] | None) -> dict[str, int]:
    family = registry.family_of_run(store, run_id)
    store.set_derived_version(run_id, None)

    def phase(key: str, work: Callable[[], Any]) -> Any:
        if on_phase is not None:
            on_phase(PHASES[key])
        t = time.perf_counter()
        value = work()
        if phases is not None:
            phases[key] = time.perf_counter() - t
        return value

    counts: dict[str, int] = phase("derive", lambda: family.derive(store, run_id))
    counts["rollups"] = phase("rollups", lambda: family.refresh_rollups(store, run_id))
    store.set_derived_version(run_id, family.derived_version)
    return counts


def refresh(store: Store, run_id: int, from_height: int | None, *, rollups: bool = True,
            derive: bool = True) -> dict[str, int]:  # fmt: skip
    """Bring the derived tables and rollups of a run whose events changed only at heights ``>= from_height``
    (and in events without a height) up to date: the family's incremental derive from that height
    (:meth:`~bftscope.families.base.ChainFamily.derive_incremental`), then every rollup — or, with
    ``rollups=False``, none: the stored ones are dropped and answers are computed live until the next
    refresh (never stale). ``None``: the change is unknown, everything is rebuilt. ``derive=False``: the
    run holds no event of a kind the family's derive reads (``derived_from_kinds``), so its derived tables are
    empty and stay so: only the rollups are done. The derived version is
    left as it is: the caller (a live run's sink, :mod:`bftscope.ingest.livesink`) sets it once no event
    arrived meanwhile."""
    family = registry.family_of_run(store, run_id)
    with _deriving(store):
        if from_height is None:
            counts = family.derive(store, run_id)
        elif derive:
            counts = family.derive_incremental(store, run_id, from_height)
        else:
            counts = {}
        if rollups:
            counts["rollups"] = family.refresh_rollups(store, run_id)
        else:
            rollup_engine.drop(store, run_id)
    return counts


def ensure_current(store: Store, run_id: int, *, on_phase: Phase | None = None) -> bool:
    """Rebuild the run's derived tables and rollups unless they are current; True when it rebuilt.

    A store opened read-only cannot rebuild: its readers compute what is missing live (rollups) or
    see the derived tables as they are.
    """
    if is_current(store, run_id) or store.read_only:
        return False
    build(store, run_id, on_phase=on_phase)
    return True


def rebuild_stale(store: Store, on_error: Callable[[str, BftscopeError], None] | None = None) -> list[str]:
    """Bring every run that has events up to date (a server starting after a crash); returns their names.

    A run that fails to rebuild (a full disk, a query past its time limit) is reported to ``on_error``
    and left stale for ``bftscope rebuild``: one run must not keep a server from starting.
    """
    rebuilt = []
    for run in store.list_runs():
        try:
            if run["sources"] and ensure_current(store, int(run["id"])):
                rebuilt.append(str(run["name"]))
        except BftscopeError as exc:
            if on_error is None:
                raise
            on_error(str(run["name"]), exc)
    return rebuilt
