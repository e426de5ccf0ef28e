"""Whether a run's derived tables and rollups are current, and bringing them up to date.

Derived tables (vote arrivals, deliveries) and rollups are built from a run's events after its
sources are written. A process killed or interrupted between the two used to leave a run whose
sources were all marked ingested but whose derived tables were empty or stale — for good, since
re-ingesting found only duplicates. So the run records the version of what it holds
(``runs.derived_version``): it is cleared before any event of the run changes and written only
after both the derived tables and the rollups are complete. Whoever needs them — the next ingest
(even when every file is a duplicate), the CLI's readers, the API at start-up, ``bftscope
rebuild`` — calls :func:`ensure_current`, which rebuilds what is not current. Raising
:data:`DERIVED_VERSION` (when what is derived changes) makes every older run rebuild the same way.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from bftscope.cometbft import derive, peerids, rollups
from bftscope.store.base import Store

__all__ = ["DERIVED_VERSION", "PHASES", "Phase", "build", "ensure_current", "is_current", "rebuild_stale"]

DERIVED_VERSION = 3  # 2: inferred p2p ids, restarts, the min-delay clock estimator, topology; 3: deliveries' event ids
# The phases of an ingest: key in IngestResult.phases → label shown to people.
PHASES = {"parse_store": "parse and store", "derive": "derived tables", "rollups": "metric rollups"}
Phase = Callable[[str], None]  # called with the label of each phase after parsing, as it starts


def is_current(store: Store, run_id: int) -> bool:
    return store.derived_version(run_id) == DERIVED_VERSION


def build(
    store: Store, run_id: int, *, on_phase: Phase | None = None, phases: dict[str, float] | None = None
) -> dict[str, int]:
    """Rebuild the run's derived tables, then its rollups, then mark them current. Returns row counts;
    the seconds of each phase go into ``phases``."""
    store.set_derived_version(run_id, None)

    def phase(key: str, work: Callable[[], Any]) -> Any:
        if on_phase is not None:
            on_phase(PHASES[key])
        t = time.perf_counter()
        value = work()
        if phases is not None:
            phases[key] = time.perf_counter() - t
        return value

    # Through the modules (not names imported from them), so a test can stand in for either phase.
    # Inferred p2p ids are derived data too: deliveries need them to tie a receipt to its sender.
    counts: dict[str, int] = phase("derive", lambda: (peerids.resolve(store, run_id), derive.rebuild(store, run_id))[1])
    counts["rollups"] = phase("rollups", lambda: rollups.refresh(store, run_id))
    store.set_derived_version(run_id, DERIVED_VERSION)
    return counts


def ensure_current(store: Store, run_id: int, *, on_phase: Phase | None = None) -> bool:
    """Rebuild the run's derived tables and rollups unless they are current; True when it rebuilt.

    A store opened read-only cannot rebuild: its readers compute what is missing live (rollups) or
    see the derived tables as they are.
    """
    if is_current(store, run_id) or getattr(store, "read_only", False):
        return False
    build(store, run_id, on_phase=on_phase)
    return True


def rebuild_stale(store: Store) -> list[str]:
    """Bring every run that has events up to date (a server starting after a crash); returns their names."""
    rebuilt = []
    for run in store.list_runs():
        if run["sources"] and ensure_current(store, int(run["id"])):
            rebuilt.append(str(run["name"]))
    return rebuilt
