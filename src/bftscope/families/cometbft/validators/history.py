"""Validator sets of a run with their history: who was in the set, with what power, from which height.

A set is stored at the height it took effect (``validator_sets``), and only when membership or voting power
changed; the set at height ``h`` is the one stored at the greatest height ``<= h`` (:func:`set_at`). Proposer
priorities change every height, so they are kept apart, one JSON array per height in set order
(``validator_priorities``).

Where sets come from (``source``):

* ``genesis`` — ``config/genesis.json`` of a node home, at ``initial_height``. It is read at ingest and kept
  with the node (``nodes.meta["genesis"]``), so the derived step can redo it without the files.
* ``validator_update`` — ``validator_update`` event rows (the RPC's ``ValidatorSetUpdates``; power 0 removes
  a validator), applied to the set in force at their height. Rows without a height are skipped and counted.
* ``rpc`` — the live follower's ``/validators`` answers, through :func:`record_set`. Never derived, so never
  removed by a rebuild.

``genesis`` and ``validator_update`` sets and all computed priorities (``computed``) are derived data:
:func:`rebuild` (part of the family's derive step) removes and recomputes them, so ``bftscope rebuild``
redoes them. An empty set — a failed or empty fetch — is never written: the set in force stays.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from bftscope.families.cometbft.validators import priority
from bftscope.families.cometbft.validators.genesis import GenesisSet, read_genesis
from bftscope.families.cometbft.validators.validator import Validator
from bftscope.store.base import Store

__all__ = ["Change", "changes", "keep_genesis", "priorities_at", "rebuild", "record_priorities", "record_set",
           "set_at", "set_ranges"]  # fmt: skip

DERIVED_SOURCES = ("genesis", "validator_update", "computed")
_ADDRESS = re.compile(r"^[0-9A-Fa-f]{40}$")
_INSERT_CHUNK = 500
# Priorities are computed for at most this many heights of a run (a long live run: the rest stays unknown).
MAX_PRIORITY_HEIGHTS = 200_000

Change = tuple[int, list[str], list[str], dict[str, tuple[int, int]]]  # height, added, removed, power changes


def _ordered(vals: Iterable[Validator]) -> list[Validator]:
    """CometBFT's set order (power descending, then address) with indexes renumbered."""
    ranked = sorted(vals, key=lambda v: (-v.power, bytes.fromhex(v.address)))
    return [Validator(v.address, v.power, v.proposer_priority, i) for i, v in enumerate(ranked)]


_SET_AT = (
    "SELECT validator, voting_power, proposer_priority, idx FROM validator_sets"
    " WHERE run_id = :run AND height = (SELECT max(height) FROM validator_sets"
    " WHERE run_id = :run AND height <= :h) ORDER BY idx"
)


def _validators(rows: list[tuple[Any, ...]]) -> list[Validator]:
    return [Validator(str(a), int(p), None if pp is None else int(pp), int(i)) for a, p, pp, i in rows]


def set_at(store: Store, run_id: int, height: int) -> list[Validator]:
    """The set in force at ``height`` (empty when none is known), in set order."""
    return _validators(store.query(_SET_AT, {"run": run_id, "h": height}))


def _same(a: Sequence[Validator], b: Sequence[Validator]) -> bool:
    return {v.address: v.power for v in a} == {v.address: v.power for v in b}


def _insert(store: Store, table: str, columns: str, rows: list[tuple[Any, ...]]) -> None:
    width = len(rows[0]) if rows else 0
    for start in range(0, len(rows), _INSERT_CHUNK):
        chunk = rows[start:start + _INSERT_CHUNK]
        marks = ", ".join("(" + ", ".join("?" * width) + ")" for _ in chunk)
        store.execute(f"INSERT INTO {table} ({columns}) VALUES {marks}", [x for row in chunk for x in row])


def record_priorities(store: Store, run_id: int, height: int, priorities: Sequence[int], *, source: str) -> None:
    """Keep the priorities of ``height`` (in set order), replacing what was there."""
    store.execute("DELETE FROM validator_priorities WHERE run_id = ? AND height = ?", [run_id, height])
    _insert(store, "validator_priorities", "run_id, height, priorities, source",
            [(run_id, height, json.dumps([int(p) for p in priorities]), source)])  # fmt: skip


def record_set(
    store: Store, run_id: int, height: int, validators: Sequence[Validator], *, source: str = "rpc"
) -> bool:
    """Record the set in force at ``height``; True when it was written (it differs from the set in force).

    An empty ``validators`` (a failed or empty fetch) writes nothing. Priorities, when every member has one,
    are kept for the height even when the set itself did not change. ValueError for an address that is not
    40 hex digits, a power that is not positive or an address listed twice (nothing is written)."""
    if not validators:
        return False
    for v in validators:
        if not _ADDRESS.match(v.address) or v.power <= 0:
            raise ValueError(f"not a validator: {v.address[:60]!r} with power {v.power}")
    if len({v.address.upper() for v in validators}) != len(validators):
        raise ValueError("a validator is listed twice")
    validators = [Validator(v.address.upper(), v.power, v.proposer_priority, v.index) for v in validators]
    vals = _ordered(validators)
    with store.transaction():
        # reads inside a transaction go through execute (the writer's own view)
        changed = not _same(_validators(store.execute(_SET_AT, {"run": run_id, "h": height})), vals)
        if changed:
            store.execute("DELETE FROM validator_sets WHERE run_id = ? AND height = ?", [run_id, height])
            _insert(store, "validator_sets", "run_id, height, validator, voting_power, proposer_priority, idx, source",
                    [(run_id, height, v.address, v.power, v.proposer_priority, v.index, source)
                     for v in vals])  # fmt: skip
        if all(v.proposer_priority is not None for v in vals):
            record_priorities(store, run_id, height, [int(v.proposer_priority or 0) for v in vals], source=source)
    return changed


def priorities_at(store: Store, run_id: int, height: int) -> list[int] | None:
    """Every member's proposer priority at ``height`` in set order; None when not known."""
    rows = store.query("SELECT priorities FROM validator_priorities WHERE run_id = ? AND height = ?", [run_id, height])
    return [int(p) for p in json.loads(rows[0][0])] if rows else None


def changes(store: Store, run_id: int) -> list[Change]:
    """Each height a set took effect: ``(height, added, removed, {address: (old power, new power)})``; the
    first set known is all ``added``."""
    rows = store.query("SELECT height, validator, voting_power FROM validator_sets WHERE run_id = ?"
                       " ORDER BY height, idx", [run_id])  # fmt: skip
    by_height: dict[int, dict[str, int]] = {}
    for h, v, p in rows:
        by_height.setdefault(int(h), {})[str(v)] = int(p)
    out: list[Change] = []
    before: dict[str, int] = {}
    for h, now in by_height.items():
        added = [a for a in now if a not in before]
        removed = sorted(a for a in before if a not in now)
        power = {a: (before[a], p) for a, p in now.items() if a in before and before[a] != p}
        out.append((h, added, removed, power))
        before = now
    return out


def set_ranges(store: Store, run_id: int) -> list[tuple[int, int | None, list[Validator]]]:
    """``(from height, to height or None, set)`` for each stored set, in height order."""
    heights = [int(r[0]) for r in store.query(
        "SELECT DISTINCT height FROM validator_sets WHERE run_id = ? ORDER BY height", [run_id])]  # fmt: skip
    return [(h, heights[i + 1] - 1 if i + 1 < len(heights) else None, set_at(store, run_id, h))
            for i, h in enumerate(heights)]  # fmt: skip


# ---- ingest: genesis kept with the node -------------------------------------------------------------------


def _meta(store: Store, run_id: int, node: int) -> dict[str, Any]:
    rows = store.query("SELECT meta FROM nodes WHERE run_id = ? AND node = ?", [run_id, node])
    return json.loads(rows[0][0]) if rows and rows[0][0] else {}


def keep_genesis(store: Store, run_id: int, node: int, home: Path | None) -> GenesisSet | None:
    """Read the home's ``genesis.json`` set and keep it with the node (``nodes.meta["genesis"]``)."""
    found = read_genesis(home) if home is not None else None
    if found is None:
        return None
    meta = _meta(store, run_id, node)
    meta["genesis"] = {"initial_height": found.initial_height, "validators": [list(m) for m in found.members],
                       "skipped": found.skipped}  # fmt: skip
    store.execute("UPDATE nodes SET meta = ? WHERE run_id = ? AND node = ?", [json.dumps(meta), run_id, node])
    return found


def _kept_genesis(store: Store, run_id: int) -> tuple[GenesisSet | None, int]:
    """The genesis set most nodes kept, and how many nodes kept a different one."""
    votes: dict[str, int] = {}
    for (meta,) in store.query("SELECT meta FROM nodes WHERE run_id = ? ORDER BY node", [run_id]):
        g = json.loads(meta).get("genesis") if meta else None
        if isinstance(g, dict):
            key = json.dumps([g.get("initial_height"), g.get("validators")])
            votes[key] = votes.get(key, 0) + 1
    if not votes:
        return None, 0
    best = max(votes, key=lambda k: votes[k])
    height, members = json.loads(best)
    return GenesisSet(int(height), [(str(a), int(p)) for a, p in members]), sum(votes.values()) - votes[best]


# ---- derive ----------------------------------------------------------------------------------------------


def _apply(base: Sequence[Validator], updates: dict[str, int]) -> list[Validator]:
    """``base`` with ``updates`` (address → new power; 0 removes). A new member starts at CometBFT's
    priority for newcomers, -1.125 × the new total power."""
    powers = {v.address: v for v in base}
    for addr, power in updates.items():
        if power <= 0:
            powers.pop(addr, None)
        elif addr in powers:
            old = powers[addr]
            powers[addr] = Validator(addr, power, old.proposer_priority, old.index)
        else:
            powers[addr] = Validator(addr, power, None, 0)
    total = sum(v.power for v in powers.values())
    fresh = -(total + (total >> 3))
    return _ordered(Validator(v.address, v.power, fresh if v.proposer_priority is None else v.proposer_priority,
                              v.index) for v in powers.values())  # fmt: skip


def _updates(store: Store, run_id: int) -> tuple[dict[int, dict[str, int]], int]:
    """``validator_update`` rows by height (address → power), and how many were skipped (no height, no
    address or no power)."""
    by_height: dict[int, dict[str, int]] = {}
    skipped = 0
    for h, addr, extra in store.query("SELECT height, validator, extra FROM events WHERE run_id = ?"
                                      " AND kind = 'validator_update' ORDER BY ts, id", [run_id]):  # fmt: skip
        try:
            power = json.loads(extra)["power"] if extra else None
        except (ValueError, TypeError, KeyError):
            power = None
        if h is None or not isinstance(addr, str) or not _ADDRESS.match(addr) or not isinstance(power, int):
            skipped += 1
            continue
        by_height.setdefault(int(h), {})[addr.upper()] = power
    return by_height, skipped


def _event_heights(store: Store, run_id: int) -> tuple[int, int] | None:
    row = store.query("SELECT min(height), max(height) FROM events WHERE run_id = ? AND height > 0"
                      " AND kind IN ('step', 'block_committed', 'commit_sig')", [run_id])[0]  # fmt: skip
    return None if row[0] is None else (int(row[0]), int(row[1]))


def _compute_priorities(store: Store, run_id: int) -> int:
    """Fill ``computed`` priorities for every height of the run that has none (CometBFT's rule from the
    stored sets); returns how many heights were written."""
    span = _event_heights(store, run_id)
    ranges = set_ranges(store, run_id)
    if span is None or not ranges:
        return 0
    known = {int(h) for (h,) in store.query("SELECT height FROM validator_priorities WHERE run_id = ?", [run_id])}
    start = ranges[0][0]
    if span[0] - start > MAX_PRIORITY_HEIGHTS:  # e.g. a late node's logs with the chain's genesis: not computed
        return 0
    stop = min(span[1], start + MAX_PRIORITY_HEIGHTS - 1)
    starts = {lo: vals for lo, _, vals in ranges}
    current: priority.HeightSet | None = None
    rows: list[tuple[Any, ...]] = []
    for h in range(start, stop + 1):
        stored = priorities_at(store, run_id, h) if h in known else None
        if h in starts:
            vals = starts[h]
            if stored is not None and len(stored) == len(vals):
                vals = [Validator(v.address, v.power, p, v.index) for v, p in zip(vals, stored, strict=True)]
                current = priority.HeightSet(vals, "")
            elif current is None or all(v.proposer_priority is None for v in vals):
                current = priority.genesis((v.address, v.power) for v in vals)
            else:  # a change: carry each remaining member's priority, then one step (CometBFT's updateState)
                prev = {v.address: v.proposer_priority for v in current.validators}
                current = priority.next_height(priority.HeightSet(
                    _apply(current.validators, {v.address: v.power for v in vals} |
                           {a: 0 for a in prev if a not in {v.address for v in vals}}), ""))  # fmt: skip
        elif current is not None:
            current = priority.next_height(current) if stored is None else priority.HeightSet(
                [Validator(v.address, v.power, p, v.index) for v, p in zip(current.validators, stored, strict=True)],
                "")  # fmt: skip
        if current is not None and stored is None and h >= span[0]:
            rows.append((run_id, h, json.dumps([v.proposer_priority or 0 for v in current.validators]), "computed"))
    _insert(store, "validator_priorities", "run_id, height, priorities, source", rows)
    return len(rows)


def rebuild(store: Store, run_id: int) -> dict[str, int]:
    """Recompute the run's derived sets and priorities (genesis, ``validator_update`` rows, computed
    priorities); ``rpc`` rows stay. Returns counts, skipped rows and genesis disagreements included."""
    marks = ", ".join("?" * len(DERIVED_SOURCES))
    for table in ("validator_sets", "validator_priorities"):
        store.execute(f"DELETE FROM {table} WHERE run_id = ? AND source IN ({marks})", [run_id, *DERIVED_SOURCES])
    written = 0
    gen, disagreeing = _kept_genesis(store, run_id)
    if gen is not None:
        first = priority.genesis(gen.members)
        written += record_set(store, run_id, gen.initial_height, first.validators, source="genesis")
    updates, skipped = _updates(store, run_id)
    for h in sorted(updates):
        base = set_at(store, run_id, h)
        if base or any(p > 0 for p in updates[h].values()):
            after = _apply(base, updates[h])
            written += record_set(store, run_id, h, [Validator(v.address, v.power, None, v.index) for v in after],
                                  source="validator_update")  # fmt: skip
    return {"validator_sets": written, "validator_priorities": _compute_priorities(store, run_id),
            "validator_updates_skipped": skipped, "genesis_disagreements": disagreeing}  # fmt: skip
