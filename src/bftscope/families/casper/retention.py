"""Retention of a followed Casper network: by age and by size, an entity at a time (docs/casper.md "Retention").

The unit is the **entity** (a block, a deploy's acceptance, a signature, …): its row, its raw payload, its
children (a block's deploy hashes) and every node's event-log rows of it go together, in the same transaction,
so what is kept is always whole — a kept block has its deploys and its per-node receipts, and de-duplication
of what is kept is unchanged (its key and its event-log rows are still there).

- **By age**: entities first received (``received_ns``) before ``now − BFTSCOPE_CASPER_RETAIN_DAYS``.
- **By size**: while the payloads held (``casper_payloads.bytes``) exceed ``BFTSCOPE_CASPER_RETAIN_BYTES``,
  the oldest entities in store order (``out_id``) — the largest newest run of entities that fits is kept.

The newest entity is always kept: it carries the run's ``out_id`` sequence, which a restarted writer
continues (and SSE subscribers resume from). An era's validator weights go once the era-end block that set
them is gone *and* no block of that era is left — the oldest era still held keeps its weights, so its
proposer and signature answers stay whole. Event-log rows of no stored entity (a block refused as a
conflict, an entity pruned before) go by their own age. Entities are removed ``batch`` at a time, a
transaction each (the follower's writes interleave); every table's count is returned.
"""

from __future__ import annotations

import time
from typing import Any

import pyarrow as pa

from bftscope.families.casper.rows import ENTITY_TABLES
from bftscope.families.casper.store import forget_run
from bftscope.store.base import Store

__all__ = ["BATCH", "prune"]

BATCH = 5000
_DAY_NS = 86_400 * 10**9
_ENTITY_TABLES = tuple(dict.fromkeys(spec.table for spec in ENTITY_TABLES.values()))


def _count_delete(store: Store, table: str, where: str, params: list[Any], tables: dict[str, pa.Table]) -> int:
    (n,) = store.execute_with(f"SELECT count(*) FROM {table} WHERE {where}", params, tables)[0]
    if n:
        store.execute_with(f"DELETE FROM {table} WHERE {where}", params, tables)
    return int(n)


def _size_cut(store: Store, run_id: int, max_bytes: int) -> int:
    """The lowest ``out_id`` kept by size (everything below goes); 0 when the run is within the limit."""
    (total,) = store.query("SELECT coalesce(sum(bytes), 0) FROM casper_payloads WHERE run_id = ?", [run_id])[0]
    if int(total) <= max_bytes:
        return 0
    (low,) = store.query(
        "SELECT min(out_id) FROM (SELECT out_id, sum(bytes) OVER (ORDER BY out_id DESC) AS held "
        "FROM casper_payloads WHERE run_id = ?) t WHERE held <= ?", [run_id, max_bytes])[0]  # fmt: skip
    if low is not None:
        return int(low)
    (top,) = store.query("SELECT max(out_id) FROM casper_payloads WHERE run_id = ?", [run_id])[0]
    return int(top)  # not even the newest fits: it alone is kept (the out_id sequence)


def _prune_batch(store: Store, run_id: int, batch: pa.Table, removed: dict[str, int]) -> None:
    """Remove the entities of ``batch`` (``out_id``, ``type``, ``key``, ``source``) whole, in one transaction."""
    t = {"_casper_prune": batch}
    run = [run_id]
    with store.transaction():
        blocks = "(SELECT key FROM _casper_prune WHERE type = 'BlockAdded')"
        n = _count_delete(store, "casper_block_deploys", f"run_id = ? AND block_hash IN {blocks}", run, t)
        removed["casper_block_deploys"] = removed.get("casper_block_deploys", 0) + n
        log = ("run_id = ? AND ((type <> 'Shutdown' AND (type, key) IN (SELECT type, key FROM _casper_prune)) OR "
               "(type = 'Shutdown' AND (source, type, key) IN (SELECT source, type, key FROM _casper_prune)))")
        removed["casper_event_log"] = removed.get("casper_event_log", 0) + _count_delete(
            store, "casper_event_log", log, run, t)  # fmt: skip
        for table in (*_ENTITY_TABLES, "casper_payloads"):
            n = _count_delete(store, table, "run_id = ? AND out_id IN (SELECT out_id FROM _casper_prune)", run, t)
            removed[table] = removed.get(table, 0) + n
        forget_run(store, run_id)  # a writer that remembers these keys would take a re-sent one for stored


def prune(store: Store, run_id: int, *, now_ns: int | None = None, retain_days: float = 7.0,
          retain_bytes: int = 2 * 1024**3, batch: int = BATCH) -> dict[str, int]:  # fmt: skip
    """Prune run ``run_id`` by age and size (see the module's docstring); returns rows removed per table."""
    now_ns = time.time_ns() if now_ns is None else now_ns
    cut_ns = now_ns - int(retain_days * _DAY_NS)
    size_cut = _size_cut(store, run_id, retain_bytes)
    (newest,) = store.query("SELECT max(out_id) FROM casper_payloads WHERE run_id = ?", [run_id])[0]
    removed: dict[str, int] = {}
    if newest is not None:
        after = 0
        while True:
            rows = store.query(
                "SELECT out_id, type, key, source FROM casper_payloads WHERE run_id = ? AND out_id > ? "
                "AND out_id < ? AND (received_ns < ? OR out_id < ?) ORDER BY out_id LIMIT ?",
                [run_id, after, int(newest), cut_ns, size_cut, batch])  # fmt: skip
            if not rows:
                break
            after = int(rows[-1][0])
            cols = list(zip(*rows, strict=True))
            table = pa.table({"out_id": pa.array(cols[0], pa.int64()), "type": pa.array(cols[1], pa.string()),
                              "key": pa.array(cols[2], pa.string()), "source": pa.array(cols[3], pa.string())})
            _prune_batch(store, run_id, table, removed)
    with store.transaction():
        orphans = ("run_id = ? AND received_ns < ? AND NOT EXISTS (SELECT 1 FROM casper_payloads p WHERE "
                   "p.run_id = casper_event_log.run_id AND p.type = casper_event_log.type AND "
                   "p.key = casper_event_log.key)")  # fmt: skip
        removed["casper_event_log"] = removed.get("casper_event_log", 0) + _count_delete(
            store, "casper_event_log", orphans, [run_id, cut_ns], {})  # fmt: skip
        weights = ("run_id = ? AND block_hash NOT IN (SELECT block_hash FROM casper_blocks WHERE run_id = ?) "
                   "AND era_id NOT IN (SELECT era_id FROM casper_blocks WHERE run_id = ?)")  # fmt: skip
        removed["casper_era_weights"] = _count_delete(store, "casper_era_weights", weights, [run_id] * 3, {})
    return {k: v for k, v in removed.items() if v}
