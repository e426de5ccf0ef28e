"""Casper events into the store, each event once and each entity once (docs/casper.md "Store").

:meth:`CasperStore.write` takes a batch of decoded events from any nodes in any order and, in one transaction
under the store's writer:

1. drops events already in ``casper_event_log`` (same source, node id, type and key: a node re-sending after a
   ``start_from`` resume) and repeats inside the batch — the event level;
2. drops events whose entity is already stored (another node sent it first, or an earlier batch did) — the
   entity level; a block at a height another hash already holds is refused as a conflict;
3. gives each new entity the next ``out_id`` of the run and inserts its row, its raw payload, and the
   event-log rows of the whole batch.

Rows are only inserted, never updated, so the result does not depend on arrival order. The keys are checked
against the store (not a memory of keys), so memory stays flat however long a network is followed, and a
restarted process de-duplicates against what an earlier one stored. The tables' primary keys back this up.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import pyarrow as pa

from bftscope.families.casper.model import CasperEvent, channel_of
from bftscope.store.base import Store

__all__ = ["ENTITY_TABLES", "CasperStore", "Stored", "WriteResult"]


@dataclass(frozen=True)
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
    """How one event type's entity is stored: its table, the SQL of its key over the table's columns, and
    its row (column → value) from an event."""

    table: str
    key_sql: str
    row: Callable[[CasperEvent], dict[str, Any]]


def _block(e: CasperEvent) -> dict[str, Any]:
    f = e.fields
    return {"block_hash": e.key, "height": f["height"], "era_id": f["era_id"], "timestamp_ms": f["timestamp_ms"],
            "proposer": f["proposer"], "parent_hash": f["parent_hash"], "state_root_hash": f["state_root_hash"],
            "deploy_count": len(f["deploy_hashes"]), "transfer_count": len(f["transfer_hashes"]),
            "era_end": f["era_end"], "protocol_version": f["protocol_version"]}  # fmt: skip


def _pick(*names: str) -> Callable[[CasperEvent], dict[str, Any]]:
    return lambda e: {n: e.fields[n] for n in names}


ENTITY_TABLES: Final[dict[str, _Entity]] = {
    "BlockAdded": _Entity("casper_blocks", "block_hash", _block),
    "DeployAccepted": _Entity("casper_deploys_accepted", "deploy_hash",
                              _pick("deploy_hash", "account", "timestamp_ms", "ttl_ms", "chain_name")),
    "DeployProcessed": _Entity("casper_deploys_processed", "deploy_hash",
                               _pick("deploy_hash", "account", "block_hash", "timestamp_ms", "success", "cost",
                                     "error_message")),
    "DeployExpired": _Entity("casper_deploys_expired", "deploy_hash", _pick("deploy_hash")),
    "Fault": _Entity("casper_faults", "CAST(era_id AS VARCHAR) || ' ' || public_key",
                     _pick("era_id", "public_key", "timestamp_ms")),
    "FinalitySignature": _Entity("casper_signatures", "block_hash || ' ' || public_key",
                                 _pick("block_hash", "public_key", "era_id", "signature")),
    "Step": _Entity("casper_steps", "CAST(era_id AS VARCHAR)", _pick("era_id")),
    # a node's shutdown is its own: keyed by the node and its event id
    "Shutdown": _Entity("casper_shutdowns", "source || ' ' || CAST(event_id AS VARCHAR)",
                        lambda e: {"source": e.source, "event_id": -1 if e.event_id is None else e.event_id}),
}  # fmt: skip

_LOG_SCHEMA = pa.schema([("source", pa.string()), ("event_id", pa.int64()), ("type", pa.string()),
                         ("key", pa.string())])  # fmt: skip


def _entity_key(e: CasperEvent) -> str:
    return f"{e.source} {-1 if e.event_id is None else e.event_id}" if e.type == "Shutdown" else e.key


class CasperStore:
    """Writes the Casper events of run ``run_id`` of ``store``."""

    def __init__(self, store: Store, run_id: int) -> None:
        self.store = store
        self.run_id = run_id
        self._next_out: int | None = None

    def write(self, events: Sequence[CasperEvent]) -> WriteResult:
        """Store a batch (docs/casper.md "Store"); returns what was new, in ``out_id`` order."""
        batch = [e for e in events if e.type != "ApiVersion" and e.type in ENTITY_TABLES]
        result = WriteResult(received=len(batch))
        if not batch:
            return result
        with self.store.transaction():
            fresh = self._new_events(batch)
            result.duplicate_events = len(batch) - len(fresh)
            result.new_events = len(fresh)
            new, result.duplicate_entities, result.conflicts = self._new_entities(fresh)
            if self._next_out is None:
                rows = self.store.execute("SELECT max(out_id) FROM casper_payloads WHERE run_id = ?", [self.run_id])
                self._next_out = int(rows[0][0] or 0) + 1
            out_ids: dict[int, int] = {}
            for e in new:
                out_ids[id(e)] = self._next_out
                result.stored.append(Stored(self._next_out, e.type, e.key, channel_of(e.type), e.source,
                                            e.received_ns, e.raw, e.fields))  # fmt: skip
                self._next_out += 1
            try:
                self._insert(fresh, new, out_ids)
            except BaseException:
                self._next_out = None  # the transaction rolled back: read the sequence again
                raise
        return result

    def _new_events(self, batch: list[CasperEvent]) -> list[CasperEvent]:
        """The batch without events the log holds or the batch repeats (first kept)."""
        seen: set[tuple[str, int, str, str]] = set()
        unique: list[CasperEvent] = []
        for e in batch:
            k = (e.source, -1 if e.event_id is None else e.event_id, e.type, e.key)
            if k not in seen:
                seen.add(k)
                unique.append(e)
        table = pa.table({"source": [e.source for e in unique],
                          "event_id": [-1 if e.event_id is None else e.event_id for e in unique],
                          "type": [e.type for e in unique], "key": [e.key for e in unique]},
                         schema=_LOG_SCHEMA)  # fmt: skip
        held = self.store.execute_with(
            "SELECT b.source, b.event_id, b.type, b.key FROM _casper_log b JOIN casper_event_log l "
            "ON l.run_id = ? AND l.source = b.source AND l.event_id = b.event_id AND l.type = b.type AND l.key = b.key",
            [self.run_id], {"_casper_log": table})  # fmt: skip
        if not held:
            return unique
        known = {(str(s), int(i), str(t), str(k)) for s, i, t, k in held}
        return [e for e in unique if (e.source, -1 if e.event_id is None else e.event_id, e.type, e.key) not in known]

    def _new_entities(self, fresh: list[CasperEvent]) -> tuple[list[CasperEvent], int, int]:
        """(events whose entity is new, in arrival order; duplicates; conflicts)."""
        by_type: dict[str, list[CasperEvent]] = {}
        for e in fresh:
            by_type.setdefault(e.type, []).append(e)
        new_ids: set[int] = set()
        duplicates = conflicts = 0
        for kind, evs in by_type.items():
            spec = ENTITY_TABLES[kind]
            keys = pa.table({"key": [_entity_key(e) for e in evs]})
            held = {str(r[0]) for r in self.store.execute_with(
                f"SELECT {spec.key_sql} FROM {spec.table} WHERE run_id = ? AND {spec.key_sql} IN "
                "(SELECT key FROM _casper_keys)", [self.run_id], {"_casper_keys": keys})}  # fmt: skip
            taken_heights: dict[int, str] = {}
            if kind == "BlockAdded":
                heights = pa.table({"height": [int(e.fields["height"]) for e in evs]})
                taken_heights = {int(h): str(k) for h, k in self.store.execute_with(
                    "SELECT height, block_hash FROM casper_blocks WHERE run_id = ? AND height IN "
                    "(SELECT height FROM _casper_heights)", [self.run_id], {"_casper_heights": heights})}  # fmt: skip
            for e in evs:
                key = _entity_key(e)
                if key in held:
                    duplicates += 1
                    continue
                if kind == "BlockAdded":
                    height = int(e.fields["height"])
                    if taken_heights.get(height, e.key) != e.key:
                        conflicts += 1
                        continue
                    taken_heights[height] = e.key
                held.add(key)
                new_ids.add(id(e))
        return [e for e in fresh if id(e) in new_ids], duplicates, conflicts

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
            self.store.execute_with("INSERT OR IGNORE INTO casper_block_deploys (run_id, block_hash, deploy_hash, "
                                    "kind, ordinal) SELECT run_id, block_hash, deploy_hash, kind, ordinal "
                                    "FROM _casper_d",
                                    None, {"_casper_d": t})  # fmt: skip
        if weights["era_id"]:
            t = pa.table(weights | {"run_id": [run] * len(weights["era_id"])})
            self.store.execute_with("INSERT OR IGNORE INTO casper_era_weights (run_id, era_id, validator, weight, "
                                    "block_hash) SELECT run_id, era_id, validator, weight, block_hash FROM _casper_w",
                                    None, {"_casper_w": t})  # fmt: skip
