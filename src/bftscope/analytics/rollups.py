"""The rollup engine: every metric's whole-run answer, computed once after each ingest and stored as JSON.

A metric over a large run reads millions of rows and sorts them for exact percentiles; operators mostly
ask for the whole run, so :func:`refresh` stores each whole-run answer right after the derived tables
are rebuilt and :func:`answer_json` serves it with one primary-key lookup. An answer for a narrower
window, or for a run ingested before its rollups existed, is computed live by the same function, so a
rollup never disagrees with a live answer. Which metrics there are, and how each is encoded, is the
family's (:meth:`~bftscope.families.base.ChainFamily.rollups`, ``encode``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bftscope.families.base import Metric
from bftscope.store.base import Store

__all__ = ["Encoder", "answer_json", "drop", "refresh"]

Encoder = Callable[[str, Any], bytes]


def refresh(store: Store, run_id: int, metrics: Mapping[str, Metric], encode: Encoder, whole: Any,
            *, threads: int = 2) -> int:  # fmt: skip
    """Recompute and store every rollup of the run (``whole`` is the whole-run window); returns how many.

    The metrics are read-only queries, computed on ``threads`` read cursors at once: most are small
    and leave the store's own threads idle part of the time.
    """
    with ThreadPoolExecutor(max(1, threads)) as pool:
        values = list(pool.map(lambda kv: encode(kv[0], kv[1](store, run_id, whole)).decode(), metrics.items()))
    # One statement for every answer, in one transaction with the delete: each statement is a turn of the
    # store's writer, which a live store's event appends wait for, and a reader sees the old set or the new one.
    rows = [(run_id, name, value) for name, value in zip(metrics, values, strict=True)]
    with store.transaction():
        store.execute("DELETE FROM rollups WHERE run_id = ?", [run_id])
        if rows:
            store.execute("INSERT INTO rollups VALUES " + ", ".join(["(?, ?, ?)"] * len(rows)),
                          [v for row in rows for v in row])  # fmt: skip
    return len(metrics)


def drop(store: Store, run_id: int) -> None:
    """Forget the run's stored answers (its events changed and they are not recomputed yet): until the next
    :func:`refresh`, every answer is computed live, so none is served stale. Looked up first on a read cursor:
    a live run drops them at every update, mostly with none stored, and a delete is a turn of the writer."""
    if store.query("SELECT 1 FROM rollups WHERE run_id = ? LIMIT 1", [run_id]):
        store.execute("DELETE FROM rollups WHERE run_id = ?", [run_id])


def answer_json(store: Store, run_id: int, name: str, metric: Metric, encode: Encoder, window: Any,
                *, whole: bool) -> bytes:  # fmt: skip
    """The metric's answer as JSON bytes: the stored rollup when ``whole`` (the whole run), else computed live."""
    if whole:
        rows = store.query("SELECT value FROM rollups WHERE run_id = ? AND name = ?", [run_id, name])
        if rows:
            return str(rows[0][0]).encode()
    return encode(name, metric(store, run_id, window))
