"""Node restarts: when a node's process stopped and started again, and the downtime they leave in a run.

A restart leaves a hole in every record of the node, and durations measured across the hole are the
downtime, not consensus (the real v0.34 network was restarted during height 50: that height "took"
51 s). No single source says "restart" outright, so restarts are found after ingest, from all of a
node's sources together, and written back as ``node_restart`` events:

* **logs** — a process start logs ``Version info`` first. A start preceded by earlier events of the
  same node (from any of its files) is a restart; the first start of a record is not.
* **WALs** — a WAL has no restart marker (``EndHeight 0`` only marks a new file). A restarted node's
  first timeout is computed from a round start time that has already passed, so CometBFT records it
  with a negative duration (kept as ``overdue_ns``). A live node also records such a timeout when a
  block takes longer to apply than ``timeout_commit``, but then right after the step that scheduled
  it; after a restart it follows a silence of the WAL. So: an overdue timeout after at least
  :data:`MIN_SILENCE_NS` without records is a restart — unless the node's other files show it alive
  in that silence.

Evidence of the same restart from a log and a WAL is merged into one event. Its ``ts`` is when the
node came back, ``extra.down_from_ns`` its last event before, ``extra.evidence`` what showed it.
:func:`network_downtime` is the time when every node of the run was down: the network had stopped,
so analytics leave it out of height durations.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from bftscope.families.cometbft import kinds
from bftscope.model import EventBatch
from bftscope.store.base import Store

__all__ = ["MIN_SILENCE_NS", "Restart", "network_downtime", "overlap_ns", "rebuild", "restarts"]

# A silence shorter than this before an overdue timeout is a live node applying a slow block.
MIN_SILENCE_NS = 1_000_000_000

_LOG_STARTS = """
SELECT e.node, e.source, e.ts, e.seq, s.name FROM events e JOIN sources s ON s.id = e.source
WHERE e.run_id = ? AND e.kind = 'node_info' AND e.extra LIKE '%"startup":true%'
ORDER BY e.node, e.ts
"""

# ``e.ts`` breaks ties: a derived event shares its record's seq, and a timeout_scheduled lies before its
# timeout_fired (families/cometbft/parse/wal.py), so ordering by seq alone could make it the "previous"
# record of the next one.
_WAL_SILENCES = f"""
WITH w AS (
    SELECT e.node, e.source, e.ts, e.seq, e.kind, e.extra,
           lag(e.ts) OVER (PARTITION BY e.source ORDER BY e.seq, e.ts) AS prev_ts
    FROM events e JOIN sources s ON s.id = e.source
    WHERE e.run_id = ? AND s.format = 'cometbft-wal' AND e.kind <> 'node_restart'
)
SELECT w.node, w.source, w.ts, w.seq, w.prev_ts, w.extra, s.name FROM w JOIN sources s ON s.id = w.source
WHERE w.kind = 'timeout_fired' AND w.extra LIKE '%overdue_ns%' AND w.ts - w.prev_ts >= {MIN_SILENCE_NS}
ORDER BY w.node, w.ts
"""

_LAST_BEFORE = """
SELECT max(ts) FROM events WHERE run_id = ? AND node = ? AND ts < ? AND kind <> 'node_restart'
"""
_OTHERS_BETWEEN = """
SELECT count(*) FROM events WHERE run_id = ? AND node = ? AND source <> ? AND ts > ? AND ts < ?
  AND kind <> 'node_restart'
"""
_RESUMED_AT = """
SELECT min(height) FROM events WHERE run_id = ? AND node = ? AND ts >= ? AND ts < ? + 60e9
  AND kind IN ('step', 'timeout_fired', 'block_executed', 'state_committed') AND height > 0
"""


@dataclass
class Restart:
    """One restart of one node: down from ``down_from_ns`` (its last event) to ``up_ns`` (back)."""

    node: int
    source: int
    up_ns: int
    seq: int | None
    down_from_ns: int
    evidence: list[str] = field(default_factory=list)


def _find(store: Store, run_id: int) -> list[Restart]:
    found: list[Restart] = []
    for node, source, ts, seq, name in store.query(_LOG_STARTS, [run_id]):
        (before,) = store.query(_LAST_BEFORE, [run_id, node, ts])[0]
        if before is None:  # the record begins with this start: nothing to say it is a second one
            continue
        found.append(Restart(node, source, ts, seq, before, [f"log {name}: process start (Version info)"]))
    for node, source, ts, seq, prev_ts, extra, name in store.query(_WAL_SILENCES, [run_id]):
        overdue_ms = json.loads(extra)["overdue_ns"] / 1e6
        note = (f"WAL {name}: no record for {(ts - prev_ts) / 1e9:.1f} s, then a timeout already "
                f"{overdue_ms:.0f} ms overdue")  # fmt: skip
        same = [r for r in found if r.node == node and prev_ts < r.up_ns <= ts]
        if same:  # the log saw the process start inside the WAL's silence
            same[0].evidence.append(note)
            continue
        (alive,) = store.query(_OTHERS_BETWEEN, [run_id, node, source, prev_ts, ts])[0]
        if alive:  # another file of the node recorded it working during the silence: not a restart
            continue
        found.append(Restart(node, source, ts, seq, prev_ts, [note]))
    return sorted(found, key=lambda r: (r.node, r.up_ns))


def rebuild(store: Store, run_id: int) -> int:
    """Recompute the run's ``node_restart`` events from its other events; returns how many there are."""
    store.execute("DELETE FROM events WHERE run_id = ? AND kind = ?", [run_id, kinds.NODE_RESTART])
    found = _find(store, run_id)
    for r in found:
        (height,) = store.query(_RESUMED_AT, [run_id, r.node, r.up_ns, r.up_ns])[0]
        extra = json.dumps({"down_from_ns": r.down_from_ns, "down_ms": (r.up_ns - r.down_from_ns) / 1e6,
                            "evidence": r.evidence}, separators=(",", ":"))  # fmt: skip
        batch = EventBatch()
        batch.rows.append((r.up_ns, kinds.NODE_RESTART, height, None, None, None, None, None, None, None, None,
                           None, None, None, None, r.seq, extra))  # fmt: skip
        store.append_events(run_id, r.node, r.source, batch.take())
    return len(found)


def restarts(store: Store, run_id: int) -> list[dict[str, Any]]:
    """The run's restarts as recorded: node label, down from, back at (ns), downtime, height, evidence."""
    labels = {n.node: n.label for n in store.nodes(run_id)}
    rows = store.query(
        "SELECT node, ts, height, extra FROM events WHERE run_id = ? AND kind = ? ORDER BY ts, node",
        [run_id, kinds.NODE_RESTART],
    )
    out: list[dict[str, Any]] = []
    for node, ts, height, extra in rows:
        x = json.loads(extra)
        out.append({"node": labels.get(node, str(node)), "down_from_ns": x["down_from_ns"], "up_ns": ts,
                    "down_ms": (ts - x["down_from_ns"]) / 1e6, "height": height,
                    "evidence": x["evidence"]})  # fmt: skip
    return out


def network_downtime(store: Store, run_id: int) -> list[tuple[int, int]]:
    """Intervals ``(from_ns, to_ns)`` in which every node of the run was down (between its last event
    before a restart and its return)."""
    (n_nodes,) = store.query("SELECT count(DISTINCT node) FROM events WHERE run_id = ?", [run_id])[0]
    rows = store.query(
        "SELECT node, CAST(json_extract(extra, '$.down_from_ns') AS BIGINT), ts FROM events"
        " WHERE run_id = ? AND kind = ?",
        [run_id, kinds.NODE_RESTART],
    )
    return _all_down(((int(n), int(lo), int(hi)) for n, lo, hi in rows), int(n_nodes))


def _all_down(intervals: Iterable[tuple[int, int, int]], n_nodes: int) -> list[tuple[int, int]]:
    """Where ``n_nodes`` distinct nodes are down at once, given ``(node, from, to)`` down intervals."""
    edges: list[tuple[int, int, int]] = []
    for node, lo, hi in intervals:
        if hi > lo:
            edges += [(lo, 1, node), (hi, -1, node)]
    edges.sort(key=lambda e: (e[0], e[1]))  # at equal times a node comes back before another goes down
    down: dict[int, int] = {}
    out: list[tuple[int, int]] = []
    start: int | None = None
    for t, step, node in edges:
        down[node] = down.get(node, 0) + step
        count = sum(1 for v in down.values() if v > 0)
        if count >= n_nodes and start is None:
            start = t
        elif count < n_nodes and start is not None:
            if t > start:
                out.append((start, t))
            start = None
    return out


def overlap_ns(lo: int, hi: int, intervals: list[tuple[int, int]]) -> int:
    """How much of ``[lo, hi]`` the ``intervals`` cover (they do not overlap one another)."""
    return sum(max(0, min(hi, b) - max(lo, a)) for a, b in intervals)
