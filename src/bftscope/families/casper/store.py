"""Casper events into the store, each event once and each entity once (docs/casper.md "Store").

:meth:`CasperStore.write` takes a batch of decoded events from any nodes in any order and, in one transaction
under the store's writer:

1. drops events the same node's channel already sent (same node id, type and key: what a ``start_from`` resume
   sends again) and repeats inside the batch — the event level. A resume can only re-send what the node still
   buffers (5,000 events per channel), so the writer remembers each channel's last ``recent`` events (read back
   from the event log when a process starts) instead of indexing every event ever stored;
2. drops events whose entity is already stored (another node sent it first, or an earlier batch did) — the
   entity level, checked against the store; a block at a height another hash already holds is refused as a
   conflict;
3. gives each new entity the next ``out_id`` of the run and inserts its row, its raw payload, and the
   event-log rows of the batch.

Rows are only inserted, never updated, so the result does not depend on arrival order. The entity check
reads only the recent part of each table: heights, eras and deploy timestamps grow with time, and a check
narrowed to the batch's range lets DuckDB skip every older row group by its min/max. No PRIMARY KEY index is
kept (DuckDB holds those in memory and they grow with every row), so memory stays flat however long a network
is followed; the one writer and its transaction make the checks safe.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import pyarrow as pa

from bftscope.families.casper.model import CasperEvent, channel_of
from bftscope.store.base import Store

__all__ = ["ENTITY_TABLES", "CasperStore", "Stored", "WriteResult"]


@dataclass(frozen=True, slots=True)
class Stored:
    """A new entity, as published: its ``out_id``, what it is and the node's JSON."""

    out_id: int
    type: str
    key: str
    channel: str
    source: str
    received_ns: int
    raw: bytes
    fields: dict[str, Any]


@dataclass
class WriteResult:
    received: int = 0
    new_events: int = 0
    duplicate_events: int = 0
    duplicate_entities: int = 0
    conflicts: int = 0
    stored: list[Stored] = field(default_factory=list)


@dataclass(frozen=True)
class _Entity:
    """How one event type's entity is stored: its table, its key columns (and the key's values from an event),
    its row (column → value) from an event, and the column growing with time that narrows a check (with its
    value from an event; None where the type has none)."""

    table: str
    key_cols: tuple[str, ...]
    key: Callable[[CasperEvent], tuple[Any, ...]]
    row: Callable[[CasperEvent], dict[str, Any]]
    range_col: str | None = None


def _block(e: CasperEvent) -> dict[str, Any]:
    f = e.fields
    return {"block_hash": e.key, "height": f["height"], "era_id": f["era_id"], "timestamp_ms": f["timestamp_ms"],
            "proposer": f["proposer"], "parent_hash": f["parent_hash"], "state_root_hash": f["state_root_hash"],
            "deploy_count": len(f["deploy_hashes"]), "transfer_count": len(f["transfer_hashes"]),
            "era_end": f["era_end"], "protocol_version": f["protocol_version"]}  # fmt: skip


def _pick(*names: str) -> Callable[[CasperEvent], dict[str, Any]]:
    return lambda e: {n: e.fields[n] for n in names}


def _fields(*names: str) -> Callable[[CasperEvent], tuple[Any, ...]]:
    if len(names) == 1:
        (a,) = names
        return lambda e: (e.fields[a],)
    a, b = names
    return lambda e: (e.fields[a], e.fields[b])


def _event_id(e: CasperEvent) -> int:
    return -1 if e.event_id is None else e.event_id


ENTITY_TABLES: Final[dict[str, _Entity]] = {
    "BlockAdded": _Entity("casper_blocks", ("block_hash",), lambda e: (e.key,), _block, "height"),
    "DeployAccepted": _Entity("casper_deploys_accepted", ("deploy_hash",), _fields("deploy_hash"),
                              _pick("deploy_hash", "account", "timestamp_ms", "ttl_ms", "chain_name"), "timestamp_ms"),
    "DeployProcessed": _Entity("casper_deploys_processed", ("deploy_hash",), _fields("deploy_hash"),
                               _pick("deploy_hash", "account", "block_hash", "timestamp_ms", "success", "cost",
                                     "error_message"), "timestamp_ms"),
    "DeployExpired": _Entity("casper_deploys_expired", ("deploy_hash",), _fields("deploy_hash"), _pick("deploy_hash")),
    "Fault": _Entity("casper_faults", ("era_id", "public_key"), _fields("era_id", "public_key"),
                     _pick("era_id", "public_key", "timestamp_ms"), "era_id"),
    "FinalitySignature": _Entity("casper_signatures", ("block_hash", "public_key"), _fields("block_hash", "public_key"),
                                 _pick("block_hash", "public_key", "era_id", "signature"), "era_id"),
    "Step": _Entity("casper_steps", ("era_id",), _fields("era_id"), _pick("era_id"), "era_id"),
    # a node's shutdown is its own: keyed by the node and its event id
    "Shutdown": _Entity("casper_shutdowns", ("source", "event_id"), lambda e: (e.source, _event_id(e)),
                        lambda e: {"source": e.source, "event_id": _event_id(e)}),
}  # fmt: skip

RECENT = 10_000  # events remembered per node channel: twice a node's default replay buffer (5,000)
_RECENT_WINDOW_NS = 86_400 * 10**9  # how far back the event log is read to remember them after a restart


class _Recent:
    """The last events (node id, type, key) of one node's channel, at most ``size``: what a ``start_from``
    resume can send again."""

    def __init__(self, size: int, seen: Sequence[tuple[int, str, str]]) -> None:
        self.size = size
        self.order: deque[tuple[int, str, str]] = deque(seen[-size:] if size else ())
        self.keys = set(self.order)

    def add(self, k: tuple[int, str, str]) -> bool:
        """True when ``k`` is new (and now remembered)."""
        if k in self.keys:
            return False
        self.keys.add(k)
        self.order.append(k)
        if len(self.order) > self.size:
            self.keys.discard(self.order.popleft())
        return True


class CasperStore:
    """Writes the Casper events of run ``run_id`` of ``store``; ``recent``: events remembered per node channel."""

    def __init__(self, store: Store, run_id: int, *, recent: int = RECENT) -> None:
        self.store = store
        self.run_id = run_id
        self.recent = recent
        self._next_out: int | None = None
        self._seen: dict[tuple[str, str], _Recent] = {}

    def write(self, events: Sequence[CasperEvent]) -> WriteResult:
        """Store a batch (docs/casper.md "Store"); returns what was new, in ``out_id`` order."""
        batch = [e for e in events if e.type != "ApiVersion" and e.type in ENTITY_TABLES]
        result = WriteResult(received=len(batch))
        if not batch:
            return result
        try:
            with self.store.transaction():
                fresh = self._new_events(batch)
                result.duplicate_events = len(batch) - len(fresh)
                result.new_events = len(fresh)
                new, result.duplicate_entities, result.conflicts = self._new_entities(fresh)
                if self._next_out is None:
                    rows = self.store.execute("SELECT max(out_id) FROM casper_payloads WHERE run_id = ?",
                                              [self.run_id])  # fmt: skip
                    self._next_out = int(rows[0][0] or 0) + 1
                next_out = self._next_out
                out_ids: dict[int, int] = {}
                for e in new:
                    out_ids[id(e)] = next_out
                    result.stored.append(Stored(next_out, e.type, e.key, channel_of(e.type), e.source, e.received_ns,
                                                e.raw, e.fields))  # fmt: skip
                    next_out += 1
                self._insert(fresh, new, out_ids)
        except BaseException:
            # nothing of the batch was stored: what the windows learnt from it is forgotten (read again from the log)
            for e in batch:
                self._seen.pop((e.source, e.channel), None)
            raise
        self._next_out = next_out
        return result

    def _new_events(self, batch: list[CasperEvent]) -> list[CasperEvent]:
        """The batch without the events each node's channel already sent (first of the batch's repeats kept)."""
        fresh: list[CasperEvent] = []
        for e in batch:
            window = self._seen.get((e.source, e.channel))
            if window is None:
                window = self._seen[(e.source, e.channel)] = self._remembered(e.source, e.channel)
            if window.add((_event_id(e), e.type, e.key)):
                fresh.append(e)
        return fresh

    def _remembered(self, source: str, channel: str) -> _Recent:
        """A channel's last events from the log (a process that starts again knows what it stored)."""
        since = time.time_ns() - _RECENT_WINDOW_NS
        rows = self.store.execute(
            "SELECT event_id, type, key FROM casper_event_log WHERE run_id = ? AND source = ? AND channel = ? "
            "AND received_ns >= ? ORDER BY received_ns DESC LIMIT ?",
            [self.run_id, source, channel, since, self.recent])
        return _Recent(self.recent, [(int(i), str(t), str(k)) for i, t, k in reversed(rows)])

    def _held(self, spec: _Entity, evs: list[CasperEvent], ev_keys: list[tuple[Any, ...]]) -> set[tuple[Any, ...]]:
        """Keys of ``evs`` (``ev_keys``) already stored, reading only the range of the table the batch can be in."""
        keys = list(set(ev_keys))
        batch = pa.table({c: [k[i] for k in keys] for i, c in enumerate(spec.key_cols)})
        on = " AND ".join(f"t.{c} = b.{c}" for c in spec.key_cols)
        where, params = "t.run_id = ?", [self.run_id]
        if spec.range_col is not None:
            values = [e.fields.get(spec.range_col) for e in evs]
            known = [int(v) for v in values if v is not None]
            if len(known) == len(values):
                where += f" AND t.{spec.range_col} BETWEEN ? AND ?"
                params += [min(known), max(known)]
        cols = ", ".join(f"t.{c}" for c in spec.key_cols)
        rows = self.store.execute_with(f"SELECT {cols} FROM {spec.table} t JOIN _casper_keys b ON {on} WHERE {where}",
                                       params, {"_casper_keys": batch})  # fmt: skip
        return {tuple(r) for r in rows}

    def _new_entities(self, fresh: list[CasperEvent]) -> tuple[list[CasperEvent], int, int]:
        """(events whose entity is new, in arrival order; duplicates; conflicts)."""
        by_type: dict[str, list[CasperEvent]] = {}
        for e in fresh:
            by_type.setdefault(e.type, []).append(e)
        new: list[CasperEvent] = []
        duplicates = conflicts = 0
        for kind, evs in by_type.items():
            spec = ENTITY_TABLES[kind]
            ev_keys = [spec.key(e) for e in evs]
            held = self._held(spec, evs, ev_keys)
            taken: dict[int, str] = {}
            if kind == "BlockAdded":
                heights = [int(e.fields["height"]) for e in evs]
                taken = {int(h): str(k) for h, k in self.store.execute(
                    "SELECT height, block_hash FROM casper_blocks WHERE run_id = ? AND height BETWEEN ? AND ?",
                    [self.run_id, min(heights), max(heights)])}  # fmt: skip
            for e, key in zip(evs, ev_keys, strict=True):
                if key in held:
                    duplicates += 1
                    continue
                if kind == "BlockAdded":
                    height = int(e.fields["height"])
                    if taken.get(height, e.key) != e.key:
                        conflicts += 1
                        continue
                    taken[height] = e.key
                held.add(key)
                new.append(e)
        if len(by_type) > 1:
            order = {id(e): i for i, e in enumerate(fresh)}
            new.sort(key=lambda e: order[id(e)])  # arrival order across types: the out_id order
        return new, duplicates, conflicts

    def _insert(self, fresh: list[CasperEvent], new: list[CasperEvent], out_ids: dict[int, int]) -> None:
        run = self.run_id
        log = pa.table({
            "run_id": pa.array([run] * len(fresh), pa.int32()),
            "source": [e.source for e in fresh], "channel": [e.channel for e in fresh],
            "event_id": pa.array([-1 if e.event_id is None else e.event_id for e in fresh], pa.int64()),
            "type": [e.type for e in fresh], "key": [e.key for e in fresh],
            "received_ns": pa.array([e.received_ns for e in fresh], pa.int64()),
            "out_id": pa.array([out_ids.get(id(e)) for e in fresh], pa.int64()),
        })  # fmt: skip
        self.store.execute_with("INSERT INTO casper_event_log SELECT * FROM _casper_log", None, {"_casper_log": log})
        if not new:
            return
        payloads = pa.table({
            "run_id": pa.array([run] * len(new), pa.int32()),
            "out_id": pa.array([out_ids[id(e)] for e in new], pa.int64()),
            "type": [e.type for e in new], "key": [e.key for e in new],
            "channel": [channel_of(e.type) for e in new], "source": [e.source for e in new],
            "received_ns": pa.array([e.received_ns for e in new], pa.int64()),
            "bytes": pa.array([len(e.raw) for e in new], pa.int32()),
            "raw": [e.raw.decode("utf-8", errors="replace") for e in new],
        })  # fmt: skip
        self.store.execute_with("INSERT INTO casper_payloads SELECT * FROM _casper_p", None, {"_casper_p": payloads})
        by_type: dict[str, list[CasperEvent]] = {}
        for e in new:
            by_type.setdefault(e.type, []).append(e)
        for kind, evs in by_type.items():
            spec = ENTITY_TABLES[kind]
            rows = [spec.row(e) | {"received_ns": e.received_ns, "out_id": out_ids[id(e)]} for e in evs]
            cols = list(rows[0])
            table = pa.table({c: [r[c] for r in rows] for c in cols} | {"run_id": [run] * len(rows)})
            names = ", ".join(["run_id", *cols])
            self.store.execute_with(f"INSERT INTO {spec.table} ({names}) SELECT {names} FROM _casper_e", None,
                                    {"_casper_e": table})  # fmt: skip
            if kind == "BlockAdded":
                self._block_children(evs)

    def _block_children(self, blocks: list[CasperEvent]) -> None:
        deploys: dict[str, list[Any]] = {"block_hash": [], "deploy_hash": [], "kind": [], "ordinal": []}
        weights: dict[str, list[Any]] = {"era_id": [], "validator": [], "weight": [], "block_hash": []}
        for e in blocks:
            for kind, hashes in (("deploy", e.fields["deploy_hashes"]), ("transfer", e.fields["transfer_hashes"])):
                for i, h in enumerate(hashes):
                    deploys["block_hash"].append(e.key)
                    deploys["deploy_hash"].append(h)
                    deploys["kind"].append(kind)
                    deploys["ordinal"].append(i)
            for validator, weight in e.fields.get("next_era_weights") or ():
                weights["era_id"].append(int(e.fields["era_id"]) + 1)
                weights["validator"].append(validator)
                weights["weight"].append(weight)
                weights["block_hash"].append(e.key)
        run = self.run_id
        if deploys["block_hash"]:
            t = pa.table(deploys | {"run_id": [run] * len(deploys["block_hash"])})
            self.store.execute_with("INSERT INTO casper_block_deploys (run_id, block_hash, deploy_hash, "
                                    "kind, ordinal) SELECT run_id, block_hash, deploy_hash, kind, ordinal "
                                    "FROM _casper_d",
                                    None, {"_casper_d": t})  # fmt: skip
        if weights["era_id"]:
            t = pa.table(weights | {"run_id": [run] * len(weights["era_id"])})
            self.store.execute_with("INSERT INTO casper_era_weights (run_id, era_id, validator, weight, "
                                    "block_hash) SELECT run_id, era_id, validator, weight, block_hash FROM _casper_w",
                                    None, {"_casper_w": t})  # fmt: skip
