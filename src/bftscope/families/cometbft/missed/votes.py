"""Missed votes: for each height and round, each validator of that height's set, and each vote type, what
became of its vote (docs/live.md "Missed votes").

Statuses, in the order they are decided:

* ``voted`` — a vote for a block seen by some observer before that observer committed the height, or the
  validator's signature in the block's commit (``commit_sig`` flag 2: it counted);
* ``late`` — a vote for a block, but every observer that saw it had already committed the height
  (``step`` commit or ``block_committed`` at that observer), and the commit does not hold it;
* ``nil`` — only a nil vote seen (or ``commit_sig`` flag 3);
* ``absent`` — some observer watched the whole round, no vote was seen, and none of the validator's later
  votes at that height either; for a precommit of the commit round, also not by the time some observer saw the
  next height committed (late precommits arrive until then: the next block's last commit carries them);
* ``unknown`` — no vote seen, and either no observer watched the whole round — it lies in an observation gap
  (``observation_gap`` rows, a node restart), at the edges of the capture (an observer's first round, which
  it may have joined midway, and its last, which it may not have finished), or was never entered by an
  observer — or the validator voted later in the height (CometBFT's gossip stops sending a peer the votes of
  a step it has left, so one observer can miss the prevote of a validator whose precommit it then sees: the
  prevote was most likely cast, only not delivered). Never ``absent`` there. A ``commit_sig`` with flag 1
  (not in the commit) is no evidence either way: the vote may have come after the commit was assembled.

An observer watched round ``r`` of height ``h`` whole when it entered it from an earlier round it recorded
(or from the end of the previous height, which a WAL records), later moved past it (a later round or height),
and no gap of its own overlaps it. Evidence of a vote is every event that shows a node had it: received
(``msg_received``, ``p2p_recv``), own (``msg_internal``, ``vote_signed``), added (``vote_adding``,
``vote_added``), gossiped (``p2p_send``, ``vote_gossip``), and ``commit_sig`` rows with flag 2 or 3. Votes
that carry only a validator index are resolved through the set in force at their height.

The set comes from the validator-set history (:mod:`..validators.history`): genesis for an uploaded run,
``/validators`` and ``validator_update`` rows for a live one; heights before its first recorded set use that
first set. A run with no recorded set falls back to every validator it knows (the nodes' own and every vote
signer), with power unknown. ``solo`` marks an ``absent`` vote that is the only one absent in its round and
type (one validator's problem, not the network's).

A live run's heights whose events retention pruned are answered from the rows kept just before (``missed_votes``,
:mod:`.kept`): below the last retention cut (:func:`kept_below`) the kept rows, above it the events. An observer
that recorded the end of a pruned height (kept in ``height_summaries``) entered the next one from its start.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from bftscope.families.cometbft.validators import history
from bftscope.store.base import Store

__all__ = ["GAP_ROWS", "MAX_GAP_HEIGHTS", "STATUSES", "TYPES", "compute", "kept_below", "missed"]

STATUSES = ("voted", "late", "nil", "absent", "unknown")
TYPES = ("prevote", "precommit")
_TOP = 1 << 62
# Heights of one observation gap turned into rows when nothing else names a round there (a monitor offline
# for months still answers quickly: the rest of such a gap has no rows).
MAX_GAP_HEIGHTS = 100_000
_EVIDENCE_KINDS = ("msg_received", "msg_internal", "p2p_recv", "p2p_send", "vote_signed", "vote_adding",
                   "vote_added", "vote_gossip")  # fmt: skip

_VSET = pa.schema([("lo", pa.int64()), ("hi", pa.int64()), ("validator", pa.string()), ("power", pa.int64()),
                   ("idx", pa.int32())])  # fmt: skip
_GAPS = pa.schema([("node", pa.int32()), ("t0", pa.int64()), ("t1", pa.int64()), ("h0", pa.int64()),
                   ("h1", pa.int64())])  # fmt: skip
_GAP_ROUNDS = pa.schema([("height", pa.int64()), ("round", pa.int32())])
# The events of an observer away (a gap, a restart); kept with a pruned height (analytics/heights.py).
GAP_ROWS = ("SELECT node, kind, ts, height, extra FROM events WHERE run_id = :run"
            " AND kind IN ('observation_gap', 'node_restart')")  # fmt: skip
_ENDS = pa.schema([("node", pa.int32()), ("height", pa.int64())])

_SQL = """
WITH pts AS (
    SELECT node, height, round, min(ts) AS t0 FROM events
    WHERE run_id = :run AND kind = 'step' AND height IS NOT NULL AND round IS NOT NULL
      AND height BETWEEN :lo - 1 AND :hi + 1
    GROUP BY node, height, round
), firsts AS (
    SELECT f.node, f.height, min(s.round) AS round FROM (
        SELECT node, min(height) AS height FROM events
        WHERE run_id = :run AND kind = 'step' AND height IS NOT NULL AND round IS NOT NULL GROUP BY node) f
    JOIN events s ON s.run_id = :run AND s.kind = 'step' AND s.node = f.node AND s.height = f.height
    GROUP BY f.node, f.height
), entered AS (
    SELECT f.node, f.height, f.round,
           max(CASE WHEN (he.node IS NOT NULL OR ke.node IS NOT NULL) AND f.round = 0 THEN 1 ELSE 0 END)
               AS from_start
    FROM firsts f
    LEFT JOIN events he ON he.run_id = :run AND he.kind = 'height_end' AND he.node = f.node
                        AND he.height = f.height - 1
    LEFT JOIN kept_ends ke ON ke.node = f.node AND ke.height = f.height - 1
    GROUP BY f.node, f.height, f.round
), spans AS (
    SELECT p.node, p.height, p.round, p.t0,
           lead(p.t0) OVER (PARTITION BY p.node ORDER BY p.height, p.round) AS t1
    FROM pts p
), watched AS (
    SELECT s.node, s.height, s.round,
           CASE WHEN s.t1 IS NULL THEN 0
                WHEN s.height = e.height AND s.round = e.round AND e.from_start = 0 THEN 0
                WHEN EXISTS (SELECT 1 FROM gaps g WHERE g.node = s.node
                             AND ((g.h0 IS NOT NULL AND s.height BETWEEN g.h0 AND g.h1)
                                  OR (g.t0 < s.t1 AND g.t1 > s.t0))) THEN 0
                ELSE 1 END AS whole
    FROM spans s JOIN entered e ON e.node = s.node
    WHERE s.height BETWEEN :lo AND :hi
), committed AS (
    SELECT node, height, min(ts) AS ts FROM events
    WHERE run_id = :run AND height BETWEEN :lo AND :hi + 1
      AND (kind = 'step' AND step = 'commit' OR kind = 'block_committed')
    GROUP BY node, height
), closed AS (
    SELECT DISTINCT height - 1 AS height FROM committed
), sigs AS (
    SELECT height, round, validator,
           max(CASE WHEN block_hash IS NOT NULL THEN 1 ELSE 0 END) AS in_commit,
           max(CASE WHEN block_hash IS NULL AND replace(coalesce(extra, ''), ' ', '') LIKE '%"flag":3%'
                    THEN 1 ELSE 0 END) AS nil_in_commit
    FROM events
    WHERE run_id = :run AND kind = 'commit_sig' AND height BETWEEN :lo AND :hi AND round IS NOT NULL
      AND validator IS NOT NULL
    GROUP BY height, round, validator
), seen_at AS (
    SELECT e.node, e.height, e.round, e.vote_type AS type, coalesce(e.validator, vs.validator) AS validator,
           min(CASE WHEN e.block_hash IS NOT NULL THEN e.ts END) AS block_ts,
           max(CASE WHEN e.block_hash IS NULL THEN 1 ELSE 0 END) AS nil
    FROM events e
    LEFT JOIN vset vs ON e.validator IS NULL AND vs.idx = e.validator_index AND e.height BETWEEN vs.lo AND vs.hi
    WHERE e.run_id = :run AND e.msg_type = 'vote' AND e.kind IN ({kinds}) AND e.height BETWEEN :lo AND :hi
      AND e.round IS NOT NULL AND e.vote_type IN ('prevote', 'precommit')
    GROUP BY e.node, e.height, e.round, e.vote_type, coalesce(e.validator, vs.validator)
), seen AS (
    SELECT s.height, s.round, s.type, s.validator,
           max(CASE WHEN s.block_ts IS NOT NULL AND (c.ts IS NULL OR s.block_ts <= c.ts) THEN 1 ELSE 0 END)
               AS timely,
           max(CASE WHEN s.block_ts IS NOT NULL THEN 1 ELSE 0 END) AS for_block,
           max(s.nil) AS nil
    FROM seen_at s LEFT JOIN committed c ON c.node = s.node AND c.height = s.height
    WHERE s.validator IS NOT NULL
    GROUP BY s.height, s.round, s.type, s.validator
), life AS (
    SELECT height, validator, max(phase) AS last_phase FROM (
        SELECT height, validator, 2 * round + CASE WHEN type = 'precommit' THEN 1 ELSE 0 END AS phase FROM seen
        UNION ALL SELECT height, validator, 2 * round + 1 FROM sigs WHERE in_commit = 1 OR nil_in_commit = 1
    ) u
    GROUP BY height, validator
), commit_rounds AS (
    SELECT height, max(round) AS round FROM (
        SELECT height, round FROM events
        WHERE run_id = :run AND kind = 'step' AND step = 'commit' AND height BETWEEN :lo AND :hi
        UNION ALL SELECT height, round FROM sigs
    ) u
    GROUP BY height
), rounds AS (
    SELECT height, round, max(whole) AS whole FROM (
        SELECT height, round, whole FROM watched
        UNION ALL SELECT height, round, 0 FROM sigs
        UNION ALL SELECT height, round, 0 FROM seen
        UNION ALL SELECT height, round, 0 FROM gap_rounds WHERE height BETWEEN :lo AND :hi
    ) u
    GROUP BY height, round
), grid AS (
    SELECT r.height, r.round, r.whole, cr.round IS NOT NULL AS commit_round, t.type, vs.validator, vs.power, vs.idx
    FROM rounds r
    LEFT JOIN commit_rounds cr ON cr.height = r.height AND cr.round = r.round
    JOIN vset vs ON r.height BETWEEN vs.lo AND vs.hi
    CROSS JOIN (SELECT 'prevote' AS type UNION ALL SELECT 'precommit') t
), status AS (
    SELECT g.height, g.round, g.type, g.validator, g.power, g.idx, g.commit_round,
           CASE WHEN coalesce(s.timely, 0) = 1 OR coalesce(sg.in_commit, 0) = 1 THEN 'voted'
                WHEN coalesce(s.for_block, 0) = 1 THEN 'late'
                WHEN coalesce(s.nil, 0) = 1 OR coalesce(sg.nil_in_commit, 0) = 1 THEN 'nil'
                WHEN g.whole = 1 AND coalesce(lf.last_phase, -1)
                     <= 2 * g.round + CASE WHEN g.type = 'precommit' THEN 1 ELSE 0 END
                     AND (g.type = 'prevote' OR NOT g.commit_round OR cl.height IS NOT NULL) THEN 'absent'
                ELSE 'unknown' END AS status
    FROM grid g
    LEFT JOIN closed cl ON cl.height = g.height
    LEFT JOIN seen s ON s.height = g.height AND s.round = g.round AND s.type = g.type AND s.validator = g.validator
    LEFT JOIN sigs sg ON g.type = 'precommit' AND sg.height = g.height AND sg.round = g.round
                     AND sg.validator = g.validator
    LEFT JOIN life lf ON lf.height = g.height AND lf.validator = g.validator
), solo AS (
    SELECT height, round, type, validator, power, idx, status, commit_round,
           sum(CASE WHEN status = 'absent' THEN 1 ELSE 0 END) OVER (PARTITION BY height, round, type) AS absents,
           count(*) OVER (PARTITION BY height, round, type) AS members
    FROM status
)
SELECT height, round, validator, type, status, power, status = 'absent' AND absents = 1 AND members > 1 AS solo,
       commit_round, idx
FROM solo
WHERE {where}
ORDER BY height, round, CASE WHEN type = 'prevote' THEN 0 ELSE 1 END, idx, validator
{page}
"""


def _vset(store: Store, run_id: int) -> pa.Table:
    """Each recorded set with the heights it covers; the run's known validators when none is recorded."""
    ranges = history.set_ranges(store, run_id)
    cols: dict[str, list[Any]] = {name: [] for name in _VSET.names}
    if ranges:
        for i, (lo, hi, vals) in enumerate(ranges):
            for v in vals:
                for name, value in zip(_VSET.names, (0 if i == 0 else lo, _TOP if hi is None else hi, v.address,
                                                     v.power, v.index), strict=True):  # fmt: skip
                    cols[name].append(value)
    else:
        rows = store.query(
            "SELECT validator, min(validator_index) FROM ("
            " SELECT validator, NULL AS validator_index FROM nodes WHERE run_id = :run AND validator IS NOT NULL"
            " UNION ALL SELECT validator, validator_index FROM events WHERE run_id = :run AND msg_type = 'vote'"
            " AND validator IS NOT NULL) u GROUP BY validator ORDER BY 1",
            {"run": run_id},
        )
        for addr, idx in rows:
            for name, value in zip(_VSET.names, (0, _TOP, addr, None, idx), strict=True):
                cols[name].append(value)
    return pa.table(cols, schema=_VSET)


def _gaps(store: Store, run_id: int, lo: int, hi: int) -> tuple[pa.Table, pa.Table]:
    """Each observer's time not observed (observation gaps, node restarts), and ``(height, 0)`` for the
    heights of gaps that name them, so a gap with nothing else known still shows as ``unknown``."""
    cols: dict[str, list[Any]] = {name: [] for name in _GAPS.names}
    heights: set[int] = set()
    rows = store.query(GAP_ROWS, {"run": run_id})
    below = kept_below(store, run_id)
    if below is not None:  # those recorded at heights pruned since, as kept in their summaries
        for (text,) in store.query("SELECT gaps FROM height_summaries WHERE run_id = ? AND height < ?"
                                   " AND gaps IS NOT NULL AND gaps <> '[]'", [run_id, below]):  # fmt: skip
            rows += [tuple(r) for r in json.loads(text) if isinstance(r, list) and len(r) == 5]
    for node, kind, ts, height, extra in rows:
        try:
            info = json.loads(extra) if extra else {}
        except ValueError:
            info = {}
        info = info if isinstance(info, dict) else {}
        if kind == "node_restart":
            t0, t1, h0, h1 = info.get("down_from_ns", ts), ts, None, None
        else:
            t0, t1 = ts, info.get("end_ns", _TOP)
            h0 = height
            h1 = info.get("to_height", height) if height is not None else None
        if not isinstance(t0, int) or not isinstance(t1, int):
            continue
        if not isinstance(h1, int) or h0 is None:
            h0 = h1 = None
        for name, value in zip(_GAPS.names, (node, t0, t1, h0, h1), strict=True):
            cols[name].append(value)
        if h0 is not None and h1 is not None:
            first, last = max(h0, lo), min(h1, hi, max(h0, lo) + MAX_GAP_HEIGHTS - 1)
            heights.update(range(first, last + 1))
    gap_rounds = pa.table({"height": sorted(heights), "round": [0] * len(heights)}, schema=_GAP_ROUNDS)
    return pa.table(cols, schema=_GAPS), gap_rounds


def kept_below(store: Store, run_id: int) -> int | None:
    """The height below which the run's raw events were pruned (the last retention cut; None: never pruned):
    the missed votes of those heights are the rows kept in ``missed_votes`` (:mod:`.kept`)."""
    (below,) = store.query("SELECT max(height) FROM retention_marks WHERE run_id = ?", [run_id])[0]
    return None if below is None else int(below)


def _filters(validators: Sequence[str] | None, statuses: Sequence[str] | None) -> tuple[str, dict[str, Any]]:
    where = ["1 = 1"]
    params: dict[str, Any] = {}
    if validators:
        names = {f"v{i}": v.upper() for i, v in enumerate(validators)}
        where.append("validator IN (" + ", ".join(f":{k}" for k in names) + ")")
        params.update(names)
    if statuses:
        names = {f"s{i}": s for i, s in enumerate(statuses)}
        where.append("status IN (" + ", ".join(f":{k}" for k in names) + ")")
        params.update(names)
    return " AND ".join(where), params


def compute(store: Store, run_id: int, lo: int, hi: int, *, validators: Sequence[str] | None = None,
            statuses: Sequence[str] | None = None, limit: int | None = None,
            offset: int = 0) -> list[tuple[Any, ...]]:  # fmt: skip
    """The rows of heights ``lo..hi`` computed from the run's events: ``(height, round, validator, type,
    status, power, solo, commit_round, idx)`` in :func:`missed`'s order."""
    where, params = _filters(validators, statuses)
    params.update({"run": run_id, "lo": lo, "hi": hi})
    page = ""
    if limit is not None:
        page = "LIMIT :limit OFFSET :offset"
        params.update({"limit": max(0, int(limit)), "offset": max(0, int(offset))})
    gaps, gap_rounds = _gaps(store, run_id, lo, hi)
    sql = _SQL.format(kinds=", ".join(f"'{k}'" for k in _EVIDENCE_KINDS), where=where, page=page)
    tables = {"vset": _vset(store, run_id), "gaps": gaps, "gap_rounds": gap_rounds,
              "kept_ends": _kept_ends(store, run_id)}  # fmt: skip
    return store.query_with(sql, params, tables)


def _kept_ends(store: Store, run_id: int) -> pa.Table:
    """``(node, height)`` for the observers that recorded the end of the last height pruned (kept in its
    summary): they entered the first height kept from its start."""
    below = kept_below(store, run_id)
    rows = [] if below is None else store.query("SELECT ended_nodes FROM height_summaries WHERE run_id = ?"
                                                " AND height = ?", [run_id, below - 1])  # fmt: skip
    nodes = [n for (text,) in rows for n in json.loads(text or "[]") if isinstance(n, int)]
    height = [] if below is None else [below - 1] * len(nodes)
    return pa.table({"node": nodes, "height": height}, schema=_ENDS)


def _kept(store: Store, run_id: int, lo: int, hi: int, validators: Sequence[str] | None,
          statuses: Sequence[str] | None, limit: int | None,
          offset: int) -> tuple[list[tuple[Any, ...]], int]:  # fmt: skip
    """The kept rows of heights ``lo..hi`` (a page of them), and how many match in all."""
    where, params = _filters(validators, statuses)
    params.update({"run": run_id, "lo": lo, "hi": hi})
    base = f"FROM missed_votes WHERE run_id = :run AND height BETWEEN :lo AND :hi AND {where}"
    (total,) = store.query(f"SELECT count(*) {base}", params)[0]
    page = ""
    if limit is not None:
        page = "LIMIT :limit OFFSET :offset"
        params.update({"limit": max(0, int(limit)), "offset": max(0, int(offset))})
    rows = store.query("SELECT height, round, validator, type, status, power, solo, commit_round, idx "
                       f"{base} ORDER BY height, round, CASE WHEN type = 'prevote' THEN 0 ELSE 1 END, idx, "
                       f"validator {page}", params)  # fmt: skip
    return rows, int(total)


def missed(
    store: Store,
    run_id: int,
    *,
    from_height: int | None = None,
    to_height: int | None = None,
    validators: Sequence[str] | None = None,
    statuses: Sequence[str] | None = None,
    limit: int | None = None,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """One row per (height, round, validator of that height's set, type), in that order:
    ``{"height", "round", "validator", "type", "status", "power", "solo", "commit_round"}`` (``commit_round``:
    the round the height was committed in, as a node's commit step or the commit says); ``validators`` (addresses) and
    ``statuses`` keep only those; ``limit``/``offset`` page the rows."""
    bad = [s for s in statuses or () if s not in STATUSES]
    if bad:
        raise ValueError(f"unknown status {bad[0]!r}: one of {', '.join(STATUSES)}")
    lo = max(0, from_height if from_height is not None else 0)
    hi = min(_TOP - 2, to_height if to_height is not None else _TOP - 2)
    below = kept_below(store, run_id)
    rows: list[tuple[Any, ...]] = []
    if below is not None and lo < below:  # pruned heights: the rows kept before their events went
        rows, total = _kept(store, run_id, lo, min(hi, below - 1), validators, statuses, limit, offset)
        if limit is not None:
            offset = max(0, offset - total)
            limit = max(0, limit - len(rows))
        lo = below
    if lo <= hi and limit != 0:
        rows += compute(store, run_id, lo, hi, validators=validators, statuses=statuses, limit=limit, offset=offset)
    return [{"height": int(h), "round": int(r), "validator": v, "type": t, "status": s,
             "power": None if p is None else int(p), "solo": bool(solo), "commit_round": bool(cr)}
            for h, r, v, t, s, p, solo, cr, _ in rows]  # fmt: skip
