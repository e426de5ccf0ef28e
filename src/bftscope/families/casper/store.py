"""Casper events into the store, each event once and each entity once (docs/casper.md "Store").

:meth:`CasperStore.plan` decides a batch of decoded events from any nodes in any order, and
:meth:`CasperStore.insert` inserts the rows of one or more plans in one transaction (:meth:`CasperStore.write`
does both in one transaction; a journaled sink plans in its writer thread and inserts from another):

1. drops events the same node's channel already sent (same node id, type and key: what a ``start_from`` resume
   sends again) and repeats inside the batch — the event level. A resume can only re-send what the node still
   buffers (5,000 events per channel), so the writer remembers each channel's last ``recent`` events (read back
   from the event log when a process starts) instead of indexing every event ever stored;
2. drops events whose entity is already stored (another node sent it first, or an earlier batch did) — the
   entity level; a block at a height another hash already holds is refused as a conflict;
3. gives each new entity the next ``out_id`` of the run and builds its row, its raw payload, and the
   event-log rows of the batch (typed Arrow columns: :mod:`.rows`).

Rows are only inserted, never updated, so the result does not depend on arrival order. The entity check asks
the store nothing for recent keys: heights, eras and deploy timestamps grow with time, and each table's keys
above a floor are remembered (:class:`_Known`, bounded); an older key, or one of a type without such a column,
is checked in the store — reading only the batch's range, so DuckDB skips older row groups by their min/max —
and in the plans not inserted yet. No PRIMARY KEY index is kept (DuckDB holds those in memory and they grow
with every row), so memory stays flat however long a network is followed; one writer per network makes the
checks safe.
"""

from __future__ import annotations

import itertools
import time
import weakref
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import msgspec
import pyarrow as pa

from bftscope.families.casper.model import CasperEvent, channel_of
from bftscope.families.casper.rows import ENTITY_TABLES, Decided, EntitySpec, tables_of
from bftscope.store.base import Store

__all__ = ["CasperStore", "Plan", "Stored", "WriteResult", "forget_run"]

_WRITERS: weakref.WeakSet[CasperStore] = weakref.WeakSet()  # this process's writers (forget_run)


def forget_run(store: Store, run_id: int) -> None:
    """Rows of run ``run_id`` were deleted (retention): its writers forget the entity keys they remember."""
    for w in list(_WRITERS):
        if w.store is store and w.run_id == run_id:
            w.forget()


class Stored(msgspec.Struct, frozen=True, gc=False):
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


@dataclass
class Plan:
    """A decided batch (:meth:`CasperStore.plan`): what was new (``result``) and what its rows are made of
    (``decided``: None when no event was new to its node's channel; :func:`~.rows.tables_of` builds them);
    ``keys`` / ``heights``: its new keys the remembered ones do not cover, asked of later plans until
    :meth:`CasperStore.done`."""

    id: int
    result: WriteResult
    decided: Decided | None = None
    keys: dict[str, set[tuple[Any, ...]]] = field(default_factory=dict)
    heights: dict[int, Any] = field(default_factory=dict)


RECENT = 10_000  # events remembered per node channel: twice a node's default replay buffer (5,000)
KNOWN = 200_000  # entity keys remembered per table (its recent range: see _Known)
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


_NEVER: Final = -(2**63)  # a floor below every range value: the whole table is known


class _Known:
    """Keys of one entity table stored with a range value of at least ``floor``, so a key in that range is
    checked here instead of in the store. Created from the table's largest range value (nothing is stored
    above it); holds at most ``limit`` keys, in two generations of at most ``limit / 2``: when the young one is
    full, the old one is forgotten and the floor rises above the largest value it held (what is forgotten is
    checked in the store again; the rest stays known) — a swap of two sets, never a pass over the keys on the
    subscribers' path (rebuilding 100,000 of 200,000 keys there made the writer thread's longest stalls,
    60–350 ms at 20,000 events/s). Keys mostly arrive in their range's order (heights, eras, deploy timestamps
    grow), so the floor trails the newest values by one to two generations. ``taken`` (blocks only): range
    value → key, for a block at a height another hash already holds."""

    __slots__ = ("floor", "limit", "old", "old_max", "old_taken", "taken", "young", "young_max")

    def __init__(self, floor: int, limit: int, taken: bool = False) -> None:
        self.floor = floor
        self.limit = limit
        self.young: set[tuple[Any, ...]] = set()
        self.old: set[tuple[Any, ...]] = set()
        self.young_max = self.old_max = _NEVER
        self.taken: dict[int, Any] | None = {} if taken else None
        self.old_taken: dict[int, Any] = {}

    def __len__(self) -> int:
        return len(self.young) + len(self.old)

    def __contains__(self, key: tuple[Any, ...]) -> bool:
        return key in self.young or key in self.old

    def holder(self, value: int) -> Any:
        """The key of the block stored at height ``value`` (None when none is known)."""
        assert self.taken is not None
        held = self.taken.get(value)
        return self.old_taken.get(value) if held is None else held

    def add(self, key: tuple[Any, ...], value: int) -> None:
        """Remember ``key`` (its ``value`` at least ``floor``)."""
        self.young.add(key)
        if value > self.young_max:
            self.young_max = value
        if self.taken is not None:
            self.taken[value] = key[0]
        if len(self.young) >= max(1, self.limit // 2):
            self._rotate()

    def _rotate(self) -> None:
        if self.old:  # every key at or above the new floor is in the young generation (the old one from now)
            self.floor = max(self.floor, self.old_max + 1)
        self.old, self.old_max, self.young, self.young_max = self.young, self.young_max, set(), _NEVER
        if self.taken is not None:
            self.old_taken, self.taken = self.taken, {}


class CasperStore:
    """Writes the Casper events of run ``run_id`` of ``store``; ``recent``: events remembered per node channel;
    ``known``: entity keys remembered per table."""

    def __init__(self, store: Store, run_id: int, *, recent: int = RECENT, known: int = KNOWN) -> None:
        self.store = store
        self.run_id = run_id
        self.recent = recent
        self.known_limit = known
        self._next_out: int | None = None
        self._seen: dict[tuple[str, str], _Recent] = {}
        self._known: dict[str, _Known] = {}
        self._plans = itertools.count(1)
        self._unapplied: dict[int, Plan] = {}  # plans not yet in the store with keys only they know
        _WRITERS.add(self)

    def forget(self) -> None:
        """Forget the entity keys remembered (rows were deleted: :mod:`retention`); read again from the store."""
        self._known = {}

    def write(self, events: Sequence[CasperEvent]) -> WriteResult:
        """Store a batch (docs/casper.md "Store") in one transaction; returns what was new, in ``out_id`` order."""
        try:
            with self.store.transaction():
                plan = self.plan(events)
                if plan.decided is not None:
                    self._insert_rows([tables_of(plan.decided)], None)
        except BaseException:
            self._forget_batch(events)
            raise
        self.done([plan])
        return plan.result

    def plan(self, events: Sequence[CasperEvent]) -> Plan:
        """Decide a batch — which events and entities are new, their ``out_id`` s — and the rows to insert,
        without inserting them: :meth:`insert` does, here (:meth:`write`) or after the sink journaled them. The
        decisions hold in memory at once (a next plan sees this one's entities), so plans must be inserted in
        order, and :meth:`done` called once they are. A plan that raises may leave part of what it learnt: the
        caller forgets (:meth:`write`), or resets once every earlier plan is in the store (the sink)."""
        batch = [e for e in events if e.type in ENTITY_TABLES]
        result = WriteResult(received=len(batch))
        plan = Plan(next(self._plans), result)
        if not batch:
            return plan
        fresh = self._new_events(batch)
        result.duplicate_events = len(batch) - len(fresh)
        result.new_events = len(fresh)
        if not fresh:
            return plan
        new, result.duplicate_entities, result.conflicts = self._new_entities(fresh, plan)
        if self._next_out is None:
            rows = self.store.execute("SELECT max(out_id) FROM casper_payloads WHERE run_id = ?", [self.run_id])
            self._next_out = int(rows[0][0] or 0) + 1
        first = self._next_out
        result.stored = [Stored(first + n, e.type, e.key, channel_of(e.type), e.source, e.received_ns,
                                e.raw, e.fields) for n, e in enumerate(map(fresh.__getitem__, new))]  # fmt: skip
        plan.decided = Decided(first, fresh, new)
        self._next_out = first + len(new)
        if plan.keys or plan.heights:
            self._unapplied[plan.id] = plan
        return plan

    def insert(self, tables: Sequence[dict[str, pa.Table]], journal_seq: int | None = None) -> None:
        """Insert the rows of plans (in order) in one transaction, recording ``journal_seq`` as the last
        journal record they include."""
        with self.store.transaction():
            self._insert_rows(tables, journal_seq)

    def _insert_rows(self, tables: Sequence[dict[str, pa.Table]], journal_seq: int | None) -> None:
        merged: dict[str, list[pa.Table]] = {}
        for t in tables:
            for name, table in t.items():
                merged.setdefault(name, []).append(table)
        for name, parts in merged.items():
            table = parts[0] if len(parts) == 1 else pa.concat_tables(parts)
            names = ", ".join(table.column_names)
            self.store.execute_with(f"INSERT INTO {name} (run_id, {names}) SELECT ?, {names} FROM _casper_rows",
                                    [self.run_id], {"_casper_rows": table})  # fmt: skip
        if journal_seq is not None:
            self.store.execute("DELETE FROM casper_journal WHERE run_id = ?", [self.run_id])
            self.store.execute("INSERT INTO casper_journal VALUES (?, ?)", [self.run_id, journal_seq])

    def done(self, plans: Sequence[Plan]) -> None:
        """``plans`` are in the store: what only they knew (keys the store is asked about) is the store's now."""
        for p in plans:
            self._unapplied.pop(p.id, None)

    def journal_applied(self) -> int:
        """The last journal record this run's rows include (0 when none)."""
        rows = self.store.execute("SELECT applied_seq FROM casper_journal WHERE run_id = ?", [self.run_id])
        return int(rows[0][0]) if rows else 0

    def reset(self) -> None:
        """Forget everything learnt (read again from the store); only when every plan is in the store."""
        self._seen = {}
        self._known = {}
        self._next_out = None
        self._unapplied = {}

    def _forget_batch(self, events: Sequence[CasperEvent]) -> None:
        # nothing of the batch was stored: what was learnt from it is forgotten (read again from the store)
        for e in events:
            self._seen.pop((e.source, e.channel), None)
        self._known = {}

    def _new_events(self, batch: list[CasperEvent]) -> list[CasperEvent]:
        """The batch without the events each node's channel already sent (first of the batch's repeats kept)."""
        fresh: list[CasperEvent] = []
        seen = self._seen
        for e in batch:
            window = seen.get((e.source, e.channel))
            if window is None:
                window = seen[(e.source, e.channel)] = self._remembered(e.source, e.channel)
            if window.add((-1 if e.event_id is None else e.event_id, e.type, e.key)):
                fresh.append(e)
        return fresh

    def _remembered(self, source: str, channel: str) -> _Recent:
        """A channel's last events from the log (a process that starts again knows what it stored)."""
        since = time.time_ns() - _RECENT_WINDOW_NS
        rows = self.store.execute(
            "SELECT event_id, type, key FROM casper_event_log WHERE run_id = ? AND source = ? AND channel = ? "
            "AND received_ns >= ? ORDER BY received_ns DESC LIMIT ?",
            [self.run_id, source, channel, since, self.recent],
        )
        return _Recent(self.recent, [(int(i), str(t), str(k)) for i, t, k in reversed(rows)])

    def _known_of(self, kind: str, spec: EntitySpec) -> _Known | None:
        """The remembered keys of ``kind``'s table (None for a type without a range column)."""
        if spec.range_col is None:
            return None
        known = self._known.get(kind)
        if known is None:
            (top,) = self.store.query(f"SELECT max({spec.range_col}) FROM {spec.table} WHERE run_id = ?",
                                        [self.run_id])[0]  # fmt: skip
            floor = _NEVER if top is None else int(top) + 1
            known = self._known[kind] = _Known(floor, self.known_limit, taken=kind == "BlockAdded")
        return known

    def _held(self, spec: EntitySpec, evs: list[CasperEvent], ev_keys: list[tuple[Any, ...]]) -> set[tuple[Any, ...]]:
        """Keys of ``evs`` (``ev_keys``) already stored, reading only the range of the table the batch can be in."""
        keys = list(set(ev_keys))
        batch = pa.table({c: [k[i] for k in keys] for i, c in enumerate(spec.key_cols)})
        on = " AND ".join(f"t.{c} = b.{c}" for c in spec.key_cols)
        where, params = "t.run_id = ?", [self.run_id]
        values = [spec.range_of(e) for e in evs]
        known = [v for v in values if v is not None]
        if spec.range_col is not None and len(known) == len(values):
            where += f" AND t.{spec.range_col} BETWEEN ? AND ?"
            params += [min(known), max(known)]
        cols = ", ".join(f"t.{c}" for c in spec.key_cols)
        # a read cursor: it sees what is committed without waiting for the writer lock, which a journaled sink's
        # applier holds through its inserts and DuckDB's checkpoints (plans it has not committed are in
        # _unapplied, read before this)
        rows = self.store.query_with(f"SELECT {cols} FROM {spec.table} t JOIN _casper_keys b ON {on} WHERE {where}",
                                       params, {"_casper_keys": batch})  # fmt: skip
        return {tuple(r) for r in rows}

    def _new_entities(self, fresh: list[CasperEvent], plan: Plan) -> tuple[list[int], int, int]:
        """(indices in ``fresh`` of the events whose entity is new, ascending; duplicates; conflicts). A key whose
        range the remembered keys cover is checked against them; any other against the store and the plans not
        yet in it (kept in ``plan.keys`` / ``plan.heights`` for the next plans)."""
        by_type: dict[str, list[int]] = {}
        for i, e in enumerate(fresh):
            by_type.setdefault(e.type, []).append(i)
        new: list[int] = []
        duplicates = conflicts = 0
        for kind, idx in by_type.items():
            spec = ENTITY_TABLES[kind]
            known = self._known_of(kind, spec)
            evs = [fresh[i] for i in idx]
            keys = list(map(spec.key, evs))
            col = spec.range_col
            values: list[Any] = [e.fields.get(col) for e in evs] if col is not None else [None] * len(evs)
            floor = known.floor if known is not None else None
            if floor is None:
                outside = list(range(len(evs)))
            else:
                outside = [j for j, v in enumerate(values) if v is None or v < floor]
            held: set[tuple[Any, ...]] = set()
            taken: dict[int, Any] = {}
            if outside:
                pending = list(self._unapplied.values())  # before the store is read: see done()
                held = self._held(spec, [evs[j] for j in outside], [keys[j] for j in outside])
                for other in pending:
                    held |= other.keys.get(kind, set())
                if kind == "BlockAdded":
                    heights = [int(evs[j].fields["height"]) for j in outside]
                    taken = {int(h): str(k) for h, k in self.store.query(
                        "SELECT height, block_hash FROM casper_blocks WHERE run_id = ? AND height BETWEEN ? AND ?",
                        [self.run_id, min(heights), max(heights)])}  # fmt: skip
                    for other in pending:
                        taken |= other.heights
            blocks = kind == "BlockAdded"
            for j, i in enumerate(idx):
                key, value = keys[j], values[j]
                inside = known is not None and value is not None and value >= known.floor  # an add raises it
                if key in (known if inside else held):  # type: ignore[operator]
                    duplicates += 1
                    continue
                if blocks:
                    height = value if inside else int(evs[j].fields["height"])
                    holder = known.holder(height) if inside else taken.get(height)  # type: ignore[union-attr]
                    if holder is not None and holder != key[0]:
                        conflicts += 1
                        continue
                    taken[height] = key[0]
                    if not inside:
                        plan.heights[height] = key[0]
                if inside:
                    known.add(key, value)  # type: ignore[union-attr]
                else:
                    held.add(key)
                    plan.keys.setdefault(kind, set()).add(key)
                new.append(i)
        if len(by_type) > 1:
            new.sort()  # arrival order across types: the out_id order
        return new, duplicates, conflicts
