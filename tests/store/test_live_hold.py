"""Live appends held for one write: visible within ``max_hold_s`` with no flush, and written by ``close``."""

from __future__ import annotations

import time

from bftscope.config import Settings
from bftscope.ingest.livesink import _table
from bftscope.store import open_store


def _rows(n: int) -> list[dict[str, object]]:
    return [{"ts": 1_000 + i, "kind": "vote_added", "height": i, "round": 0} for i in range(n)]


def _count(store: object, run_id: int) -> int:
    return int(store.query("SELECT count(*) FROM events WHERE run_id = ?", [run_id])[0][0])  # type: ignore[attr-defined]


def test_held_live_rows_of_several_runs_are_written_together_without_a_flush(settings: Settings) -> None:
    store = open_store(settings)
    try:
        runs = [store.get_or_create_run(f"r{i}", "cometbft").id for i in range(3)]
        sources = [store.begin_source(r, 0, "live:x", "live", "live:x", 0).id for r in runs]
        for s in sources:  # a live source is complete from the start (ingest/livesink.py)
            store.finish_source(s, lines=0, events=0, skipped={}, warnings=[])
        for r, s in zip(runs, sources, strict=True):
            store.append_events(r, 0, s, _table(_rows(5)), hold_partial=True, max_hold_s=0.05)
        for _ in range(500):  # a guard against a hang, not a timing: the timer writes them
            if all(_count(store, r) == 5 for r in runs):
                break
            time.sleep(0.01)
        assert [_count(store, r) for r in runs] == [5, 5, 5]
        store.append_events(runs[0], 0, sources[0], _table(_rows(2)), hold_partial=True, max_hold_s=60)
    finally:
        store.close()  # what is still held (the 60 s hold above) is written, not lost
    store = open_store(settings)
    try:
        assert _count(store, runs[0]) == 7
    finally:
        store.close()
