"""Who took part in consensus: each validator's votes per height and round, and each proposer's rounds.

**Votes** are a view over the missed-vote rows (:mod:`bftscope.families.cometbft.missed.votes`: one row per
height, round, validator of that height's set and vote type), with the propagation question on top: whether a
vote counted towards the receivers' decisions. Statuses:

* ``missing`` — ``absent`` there: some node watched the whole round and no node saw the vote;
* ``nil`` — only nil votes were seen;
* ``late`` — a vote for a block, but at most receivers it arrived after the receiver had moved on
  without it (a prevote after the receiver entered precommit for that round, a precommit after it
  entered commit for that height): it did not count towards the receivers' decisions;
* ``voted`` — a vote for a block, in time.

Votes that no node watched whole (``unknown`` there: the capture's edges, observation gaps, restarts of every
node) are reported apart as ``edge``, with the reason, instead of counting as missed.

**Proposers.** Per validator: rounds it was the designated proposer of (``new_round``/``proposer_turn``
records, JSON logs), rounds it proposed in (its proposal was signed, sent or received), rounds whose
proposal was committed, and designated rounds in which no proposal from it was seen.
"""

from __future__ import annotations

from typing import Any

from bftscope.families.cometbft.missed.votes import missed as missed_votes
from bftscope.store.base import Store
from bftscope.store.dialect import Dialect

__all__ = ["participation", "proposers"]

# Per vote, the share of its receivers (that recorded moving on) at which it arrived after they moved on.
_LATE = """
WITH moved_on AS (
    SELECT node, height, round, step, min(ts) AS ts FROM events
    WHERE run_id = :run AND kind = 'step' AND step IN ('precommit', 'commit')
    GROUP BY node, height, round, step
)
SELECT a.height, a.round, a.vote_type, a.validator,
       avg(CASE WHEN a.vote_type = 'prevote' THEN CASE WHEN a.first_ts > pc.ts THEN 1.0 ELSE 0.0 END
                ELSE CASE WHEN a.first_ts > cm.ts THEN 1.0 ELSE 0.0 END END) AS late_share
FROM vote_arrivals a
LEFT JOIN moved_on pc ON pc.node = a.receiver AND pc.height = a.height AND pc.round = a.round
                     AND pc.step = 'precommit'
LEFT JOIN (SELECT node, height, min(ts) AS ts FROM moved_on WHERE step = 'commit' GROUP BY node, height) cm
       ON cm.node = a.receiver AND cm.height = a.height
WHERE a.run_id = :run AND a.validator IS NOT NULL
GROUP BY a.height, a.round, a.vote_type, a.validator
"""

_ZERO = {"voted": 0, "late": 0, "nil": 0, "missing": 0, "edge_missing": 0}
_EDGE_REASON = ("not watched whole by any node: at the edge of the capture (a node's first or last round) or in "
                "an observation gap")  # fmt: skip


def participation(store: Store, run_id: int) -> dict[str, Any]:
    """Per validator: counts of ``voted``/``late``/``nil``/``missing``/``edge_missing`` votes; the lists of
    missed votes (``nil`` or ``missing``), of late votes (with the share of receivers it was late at) and
    of votes not watched whole (``edge``, with the reason)."""
    labels = {n.validator: n.label for n in store.nodes(run_id) if n.validator}
    late_share = {(h, r, t, v): share for h, r, t, v, share in store.query(_LATE, {"run": run_id})}
    per_validator: dict[str, dict[str, Any]] = {}
    missed: list[dict[str, Any]] = []
    late: list[dict[str, Any]] = []
    edge: list[dict[str, Any]] = []
    for row in missed_votes(store, run_id):
        validator, status = row["validator"], row["status"]
        counts = per_validator.setdefault(validator, {"label": labels.get(validator, validator[:12]), **_ZERO})
        where = {"height": row["height"], "round": row["round"], "vote_type": row["type"], "validator": validator}
        if status == "unknown":
            counts["edge_missing"] += 1
            edge.append({**where, "reason": _EDGE_REASON})
            continue
        share = late_share.get((row["height"], row["round"], row["type"], validator))
        if status in ("voted", "late"):  # a vote for a block was seen: did it count at its receivers?
            status = "late" if share is not None and share > 0.5 else "voted"
        elif status == "absent":
            status = "missing"
        counts[status] += 1
        if status == "late":
            late.append({**where, "late_share": share})
        elif status != "voted":
            missed.append({**where, "status": status})
    return {"validators": dict(sorted(per_validator.items())), "missed": missed, "late": late, "edge": edge}


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
