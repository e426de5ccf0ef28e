"""Who took part in consensus: each validator's votes per height and round, and each proposer's rounds.

**Votes.** For every height/round some node was in (a ``propose``/``prevote``/``precommit`` step) and
every validator the run knows (the observing nodes' own, and every address seen signing a vote — so a
validator that never voted still appears), each vote type gets one status, checked in this order:

* ``missing`` — no node saw the vote, received or signed;
* ``nil`` — only nil votes were seen;
* ``late`` — a vote for a block, but at most receivers it arrived after the receiver had moved on
  without it (a prevote after the receiver entered precommit for that round, a precommit after it
  entered commit for that height): it did not count towards the receivers' decisions;
* ``voted`` — a vote for a block, in time.

Heights at the edges of the capture (before every node's first or after every node's last full height)
are reported apart as ``edge``, with the reason, instead of counting as missed.

**Proposers.** Per validator: rounds it was the designated proposer of (``new_round``/``proposer_turn``
records, JSON logs), rounds it proposed in (its proposal was signed, sent or received), rounds whose
proposal was committed, and designated rounds in which no proposal from it was seen.
"""

from __future__ import annotations

from typing import Any

from bftscope.store.base import Store
from bftscope.store.dialect import Dialect

__all__ = ["participation", "proposers"]

_VOTES = """
WITH rounds AS (
    SELECT DISTINCT height, round FROM events
    WHERE run_id = :run AND kind = 'step' AND step IN ('propose', 'prevote', 'precommit')
), seen AS (
    SELECT height, round, vote_type, validator, bool_or(block_hash IS NOT NULL) AS for_block
    FROM events
    WHERE run_id = :run AND msg_type = 'vote' AND validator IS NOT NULL
      AND kind IN ('msg_received', 'msg_internal', 'p2p_recv', 'p2p_send', 'vote_signed', 'vote_added')
    GROUP BY height, round, vote_type, validator
), moved_on AS (
    SELECT node, height, round, step, min(ts) AS ts FROM events
    WHERE run_id = :run AND kind = 'step' AND step IN ('precommit', 'commit')
    GROUP BY node, height, round, step
), late AS (
    SELECT a.height, a.round, a.vote_type, a.validator,
           avg(CASE WHEN a.vote_type = 'prevote' THEN (a.first_ts > pc.ts)::INTEGER
                    ELSE (a.first_ts > cm.ts)::INTEGER END) AS late_share
    FROM vote_arrivals a
    LEFT JOIN moved_on pc ON pc.node = a.receiver AND pc.height = a.height AND pc.round = a.round
                         AND pc.step = 'precommit'
    LEFT JOIN (SELECT node, height, min(ts) AS ts FROM moved_on WHERE step = 'commit' GROUP BY node, height) cm
           ON cm.node = a.receiver AND cm.height = a.height
    WHERE a.run_id = :run AND a.validator IS NOT NULL
    GROUP BY a.height, a.round, a.vote_type, a.validator
), span AS (
    SELECT max(lo) AS first_full, min(hi) AS last_full FROM (
        SELECT node, min(height) + 1 AS lo, max(height) - 1 AS hi FROM events
        WHERE run_id = :run AND kind = 'step' GROUP BY node)
), grid AS (
    SELECT r.height, r.round, t.vote_type, v.validator
    FROM rounds r, (VALUES ('prevote'), ('precommit')) t(vote_type), (SELECT unnest(:vals) AS validator) v
)
SELECT g.height, g.round, g.vote_type, g.validator,
       CASE WHEN s.validator IS NULL THEN 'missing' WHEN NOT s.for_block THEN 'nil'
            WHEN l.late_share > 0.5 THEN 'late' ELSE 'voted' END AS status,
       g.height < span.first_full OR g.height > span.last_full AS edge, l.late_share
FROM grid g CROSS JOIN span
LEFT JOIN seen s USING (height, round, vote_type, validator)
LEFT JOIN late l USING (height, round, vote_type, validator)
ORDER BY g.height, g.round, g.vote_type, g.validator
"""


def _validators(store: Store, run_id: int) -> list[str]:
    return [
        r[0]
        for r in store.query(
            "SELECT validator FROM nodes WHERE run_id = :run AND validator IS NOT NULL UNION"
            " SELECT DISTINCT validator FROM events WHERE run_id = :run AND msg_type = 'vote'"
            " AND validator IS NOT NULL ORDER BY 1",
            {"run": run_id},
        )
    ]


def participation(store: Store, run_id: int) -> dict[str, Any]:
    """Per validator: counts of ``voted``/``late``/``nil``/``missing``/``edge_missing`` votes; the lists of
    missed votes (``nil`` or ``missing``), of late votes (with the share of receivers it was late at) and
    of votes missing at the capture's edges (with the reason)."""
    validators = _validators(store, run_id)
    labels = {n.validator: n.label for n in store.nodes(run_id) if n.validator}
    rows = store.query(_VOTES, {"run": run_id, "vals": validators})
    per_validator: dict[str, dict[str, Any]] = {
        v: {"label": labels.get(v, v[:12]), "voted": 0, "late": 0, "nil": 0, "missing": 0, "edge_missing": 0}
        for v in validators
    }
    missed: list[dict[str, Any]] = []
    late: list[dict[str, Any]] = []
    edge: list[dict[str, Any]] = []
    for height, rnd, vtype, validator, status, is_edge, late_share in rows:
        counts = per_validator[validator]
        where = {"height": height, "round": rnd, "vote_type": vtype, "validator": validator}
        if status == "missing" and is_edge:
            counts["edge_missing"] += 1
            edge.append({**where, "reason": "height at the edge of the capture: not every node recorded it whole"})
            continue
        counts[status] += 1
        if status == "late":
            late.append({**where, "late_share": late_share})
        elif status != "voted":
            missed.append({**where, "status": status})
    return {"validators": per_validator, "missed": missed, "late": late, "edge": edge}




def _proposers(d: Dialect) -> str:
    return f"""
WITH designated AS (
    SELECT height, round, {d.any_value("validator")} AS validator FROM events
    WHERE run_id = :run AND validator IS NOT NULL AND height > 0
      AND (kind = 'proposer_turn' OR kind = 'step' AND step = 'new_round')
    GROUP BY height, round
), proposed AS (
    SELECT e.height, e.round, {d.any_value("coalesce(e.validator, n.validator)")} AS validator FROM events e
    JOIN nodes n ON n.run_id = e.run_id AND n.node = e.node
    WHERE e.run_id = :run AND e.height > 0 AND (e.kind IN ('proposal_signed', 'proposal_received')
          OR e.msg_type = 'proposal' AND e.kind IN ('msg_internal', 'p2p_send') AND e.peer IS NULL)
      AND coalesce(e.validator, n.validator) IS NOT NULL
    GROUP BY e.height, e.round
), committed AS (
    SELECT height, max(round) AS round FROM events
    WHERE run_id = :run AND kind = 'step' AND step = 'commit' GROUP BY height
)
SELECT coalesce(d.height, p.height), coalesce(d.round, p.round), d.validator, p.validator,
       c.round IS NOT NULL AND c.round = coalesce(d.round, p.round)
FROM designated d FULL OUTER JOIN proposed p USING (height, round)
LEFT JOIN committed c ON c.height = coalesce(d.height, p.height)
ORDER BY 1, 2
"""


def proposers(store: Store, run_id: int) -> list[dict[str, Any]]:
    """Per validator: rounds designated, rounds proposed, proposals committed, designated rounds without a
    proposal seen, and those rounds (height, round). Logs name the designated proposer; WALs only show
    who did propose, so for a run where nothing names one ``designated`` and ``missed`` are None (not
    known), never 0."""
    labels = {n.validator: n.label for n in store.nodes(run_id) if n.validator}
    stats: dict[str, dict[str, Any]] = {}

    def entry(v: str) -> dict[str, Any]:
        return stats.setdefault(v, {"validator": v, "label": labels.get(v, v[:12]), "designated": 0, "proposed": 0,
                                    "committed": 0, "missed": 0, "missed_rounds": []})  # fmt: skip

    for height, rnd, designated, proposed, committed in store.query(_proposers(store.dialect), {"run": run_id}):
        if designated:
            entry(designated)["designated"] += 1
            if proposed != designated:
                entry(designated)["missed"] += 1
                entry(designated)["missed_rounds"].append({"height": height, "round": rnd})
        if proposed:
            entry(proposed)["proposed"] += 1
            if committed:
                entry(proposed)["committed"] += 1
    if not any(s["designated"] for s in stats.values()):
        for s in stats.values():
            s["designated"] = s["missed"] = None
    return sorted(stats.values(), key=lambda s: (s["label"], s["validator"]))
