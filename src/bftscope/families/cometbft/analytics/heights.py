"""Per-height summaries: how each height went across the run's observers — rounds, when it began and was
committed, its proposer and block, how many observers and vote events, and its missed-votes rows by status.

A live run keeps them in ``height_summaries`` once the height's events are pruned (:mod:`..missed.kept`);
:func:`heights` reads those kept rows below the last retention cut and computes the rest from the events.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from bftscope.families.cometbft.missed import votes
from bftscope.store.base import Store

__all__ = ["COLUMNS", "compute", "heights"]

COLUMNS = ("height", "rounds", "commit_round", "first_ts", "commit_ts", "duration_ns", "proposer", "block_hash",
           "observers", "votes_seen", "voted", "late", "nil", "absent", "unknown", "ended_nodes", "gaps")  # fmt: skip
_VOTE_KINDS = ("msg_received", "msg_internal", "p2p_recv", "vote_signed", "vote_adding", "vote_added")

_SQL = f"""
WITH ev AS (
    SELECT node, ts, kind, height, round, step, validator, block_hash, msg_type FROM events
    WHERE run_id = :run AND height BETWEEN :lo AND :hi
), per AS (
    SELECT height,
           max(round) FILTER (WHERE kind = 'step') + 1 AS rounds,
           min(ts) AS first_ts,
           min(ts) FILTER (WHERE kind = 'block_committed' OR (kind = 'step' AND step = 'commit')) AS commit_ts,
           count(DISTINCT node) AS observers,
           count(*) FILTER (WHERE msg_type = 'vote' AND kind IN ({", ".join(f"'{k}'" for k in _VOTE_KINDS)}))
               AS votes_seen
    FROM ev GROUP BY height
), cr AS (
    SELECT height, max(round) AS round FROM ev
    WHERE (kind = 'step' AND step = 'commit') OR kind = 'commit_sig' GROUP BY height
), prop AS (  -- the proposer of each round: named by a new_round step, else by its proposal (signer, own node)
    SELECT height, round, coalesce(min(v) FILTER (WHERE named), min(v)) AS proposer FROM (
        SELECT height, round, validator AS v, kind = 'step' AS named FROM ev
        WHERE validator IS NOT NULL
          AND (kind = 'step' AND step = 'new_round' OR kind = 'proposer_turn' OR msg_type = 'proposal')
        UNION ALL
        SELECT e.height, e.round, n.validator, false FROM ev e
        JOIN nodes n ON n.run_id = :run AND n.node = e.node AND n.validator IS NOT NULL
        WHERE e.kind = 'proposal_signed' OR e.kind = 'msg_internal' AND e.msg_type = 'proposal'
    ) u
    GROUP BY height, round
), blk AS (  -- the block committed, else the proposal block completed in the commit round
    SELECT e.height, coalesce(min(e.block_hash) FILTER (WHERE e.kind <> 'block_complete'), min(e.block_hash))
               AS block_hash
    FROM ev e LEFT JOIN cr ON cr.height = e.height
    WHERE e.block_hash IS NOT NULL AND (e.kind IN ('block_committed', 'commit_finalizing', 'commit_sig')
                                        OR e.kind = 'block_complete' AND e.round = cr.round)
    GROUP BY e.height
)
SELECT p.height, p.rounds, cr.round, p.first_ts, p.commit_ts, p.commit_ts - p.first_ts, pr.proposer,
       b.block_hash, p.observers, p.votes_seen
FROM per p
LEFT JOIN cr ON cr.height = p.height
LEFT JOIN prop pr ON pr.height = p.height AND pr.round = coalesce(cr.round, 0)
LEFT JOIN blk b ON b.height = p.height
ORDER BY p.height
"""


def compute(store: Store, run_id: int, lo: int, hi: int) -> list[dict[str, Any]]:
    """The summaries of heights ``lo..hi`` that have events, from the events (one dict per height, the keys
    :data:`COLUMNS`)."""
    bounds = {"run": run_id, "lo": lo, "hi": hi}
    rows = store.query(_SQL, bounds)
    counts: dict[int, Counter[str]] = {}
    for r in votes.compute(store, run_id, lo, hi):
        counts.setdefault(int(r[0]), Counter())[r[4]] += 1
    ended: dict[int, list[int]] = {}
    for h, node in store.query("SELECT DISTINCT height, node FROM events WHERE run_id = :run AND kind = 'height_end'"
                               " AND height BETWEEN :lo AND :hi ORDER BY 1, 2", bounds):  # fmt: skip
        ended.setdefault(int(h), []).append(int(node))
    gaps: dict[int, list[list[Any]]] = {}
    for node, kind, ts, h, extra in store.query(votes.GAP_ROWS + " AND height BETWEEN :lo AND :hi ORDER BY ts, node",
                                                bounds):  # fmt: skip
        gaps.setdefault(int(h), []).append([node, kind, ts, h, extra])
    out = []
    for h, rounds, cr, first, commit, duration, proposer, block, observers, seen in rows:
        c = counts.get(int(h), Counter())
        out.append(dict(zip(COLUMNS, (int(h), rounds, cr, first, commit, duration, proposer, block, observers,
                                      seen, *(c[s] for s in votes.STATUSES), ended.get(int(h), []),
                                      gaps.get(int(h), [])),
                            strict=True)))  # fmt: skip
    return out


def heights(store: Store, run_id: int, lo: int, hi: int) -> list[dict[str, Any]]:
    """The summaries of heights ``lo..hi``: kept rows below the last retention cut, computed above it."""
    below = votes.kept_below(store, run_id)
    out: list[dict[str, Any]] = []
    if below is not None and lo < below:
        kept = store.query(f"SELECT {', '.join(COLUMNS)} FROM height_summaries WHERE run_id = :run"
                           " AND height BETWEEN :lo AND :hi ORDER BY height",
                           {"run": run_id, "lo": lo, "hi": min(hi, below - 1)})  # fmt: skip
        out = [dict(zip(COLUMNS, (*r[:-2], json.loads(r[-2] or "[]"), json.loads(r[-1] or "[]")), strict=True))
               for r in kept]  # fmt: skip
        lo = below
    return out + (compute(store, run_id, lo, hi) if lo <= hi else [])
