"""Per height and round: how long each step took at each node, which heights needed more rounds, and why.

Step durations come from consecutive ``step`` events of one node (the time from entering a step to
entering the next one, on that node's clock). A round's explanation gathers what the run recorded
about it: the designated proposer, how many nodes received a proposal, how many nil and block votes
were seen, and which timeouts fired — enough to tell "the proposer was silent" from "the proposal
came late" from "votes split".
"""

from __future__ import annotations

import json
from typing import Any

from bftscope.families.cometbft.analytics.restarts import network_downtime, overlap_ns, restarts
from bftscope.store.base import Store
from bftscope.timeutil import format_ns

__all__ = ["height_detail", "heights", "round_explanations", "step_durations"]


def step_durations(store: Store, run_id: int) -> list[dict[str, Any]]:
    """p50/p95/max of time spent in each step, per node (ms). A step its node's restart cut short has no
    duration (the node was down, not in the step) and is left out."""
    q = store.dialect.quantile
    labels = {n.node: n.label for n in store.nodes(run_id)}
    rows = store.query(
        f"""
        WITH s AS (
            SELECT node, kind, step, ts, lead(ts) OVER w AS next_ts, lead(kind) OVER w AS next_kind
            FROM events WHERE run_id = ? AND kind IN ('step', 'node_restart')
            WINDOW w AS (PARTITION BY node ORDER BY ts, id)
        )
        SELECT node, step, count(*), {q("(next_ts - ts) / 1e6", 0.5)}, {q("(next_ts - ts) / 1e6", 0.95)},
               max(next_ts - ts) / 1e6
        FROM s WHERE kind = 'step' AND next_kind = 'step' GROUP BY node, step ORDER BY node, step
        """,
        [run_id],
    )
    return [{"node": labels[r[0]], "step": r[1], "count": r[2], "p50_ms": r[3], "p95_ms": r[4], "max_ms": r[5]}
            for r in rows]  # fmt: skip


def heights(store: Store, run_id: int) -> list[dict[str, Any]]:
    """One row per height: rounds used, time from the first node starting it to the last commit,
    the spread of commit times across nodes, and timeouts fired by step. Time when every node was down
    (see :mod:`.restarts`) is not part of a height: ``duration_ms`` leaves it out and
    ``downtime_ms`` says how much that was; ``restarts`` lists the nodes that came back during the height."""
    d = store.dialect
    rows = store.query(
        f"""
        WITH st AS (
            SELECT height, max(round) AS max_round, min(ts) AS first_ts FROM events
            WHERE run_id = :run AND kind = 'step' AND height > 0 GROUP BY height
        ), c AS (
            SELECT height, min(ts) AS first_commit, max(ts) AS last_commit, count(DISTINCT node) AS nodes
            FROM (SELECT node, height, min(ts) AS ts FROM events
                  WHERE run_id = :run AND kind IN ('block_committed', 'height_end') GROUP BY node, height)
            GROUP BY height
        ), t AS (
            SELECT height, step, count(*) AS n FROM events
            WHERE run_id = :run AND kind = 'timeout_fired' GROUP BY height, step
        )
        SELECT st.height, st.max_round + 1, st.first_ts, c.last_commit,
               (c.last_commit - c.first_commit) / 1e6, c.nodes,
               (SELECT {d.list_agg(d.struct({"step": "t.step", "n": "t.n"}))} FROM t WHERE t.height = st.height)
        FROM st LEFT JOIN c USING (height) ORDER BY st.height
        """,
        {"run": run_id},
    )
    down = network_downtime(store, run_id)
    back = [(r["up_ns"], r["node"]) for r in restarts(store, run_id)]
    out = []
    for height, rounds, first, last, spread, nodes, timeouts in rows:
        gap = 0 if last is None else overlap_ns(first, last, down)
        came_back = sorted({n for t, n in back if last is not None and first < t <= last})
        out.append({"height": height, "rounds": rounds,
                    "duration_ms": None if last is None else (last - first - gap) / 1e6, "downtime_ms": gap / 1e6,
                    "restarts": came_back, "commit_spread_ms": spread, "nodes_committed": nodes,
                    "timeouts": {x["step"]: x["n"] for x in (timeouts or [])}})  # fmt: skip
    return out


def round_explanations(store: Store, run_id: int) -> list[dict[str, Any]]:
    """For every round of a height that needed more than one: what happened, and a one-line reason."""
    labels = {n.validator: n.label for n in store.nodes(run_id) if n.validator}
    n_nodes = len(labels) or 1
    d = store.dialect
    rows = store.query(
        f"""
        WITH multi AS (
            SELECT height FROM events WHERE run_id = :run AND kind = 'step' AND height > 0
            GROUP BY height HAVING max(round) > 0
        ), r AS (
            SELECT e.height, e.round,
                   {d.any_value("e.validator")} FILTER (WHERE e.kind IN ('step', 'proposer_turn', 'proposal_received')
                                                   AND e.validator IS NOT NULL) AS proposer,
                   count(DISTINCT e.node) FILTER (WHERE e.msg_type = 'proposal'
                        AND e.kind IN ('proposal_received', 'msg_received', 'p2p_recv', 'msg_internal',
                                       'proposal_signed')) AS got_proposal,
                   count(DISTINCT (e.validator_index, e.vote_type)) FILTER (WHERE e.msg_type = 'vote'
                        AND e.kind IN ('msg_received', 'msg_internal', 'p2p_recv', 'vote_signed')
                        AND e.block_hash IS NULL AND e.vote_type = 'prevote'
                        AND (e.validator IS NOT NULL OR e.extra LIKE '%"nil":true%')) AS nil_prevotes,
                   {d.list_agg("e.step", distinct=True)} FILTER (WHERE e.kind = 'timeout_fired') AS timeouts
            FROM events e JOIN multi USING (height)
            WHERE e.run_id = :run AND e.round IS NOT NULL
            GROUP BY e.height, e.round
        )
        SELECT height, round, proposer, got_proposal, nil_prevotes, timeouts FROM r ORDER BY height, round
        """,
        {"run": run_id},
    )
    out = []
    for height, rnd, proposer, got, nil_prevotes, timeouts in rows:
        who = labels.get(proposer, proposer[:12] if proposer else "unknown proposer")
        if got == 0:
            reason = f"no node received a proposal from {who}"
        elif got < n_nodes:
            reason = f"only {got} of {n_nodes} nodes received {who}'s proposal in time"
        elif nil_prevotes:
            reason = f"{nil_prevotes} validators prevoted nil"
        else:
            reason = "committed in this round"
        out.append({"height": height, "round": rnd, "proposer": who, "nodes_with_proposal": got,
                    "nil_prevotes": nil_prevotes, "timeouts": sorted(timeouts or []), "reason": reason})  # fmt: skip
    return out


def height_detail(store: Store, run_id: int, height: int) -> list[dict[str, Any]]:
    """One height at every node: each step entered (round, step, time, ms since the node started the height,
    ms spent in it), the timeouts that fired and when the node committed — the raw material of "why did
    this height need three rounds", node by node, on each node's own clock. Times count from the node's
    first step at the height (a timeout of the previous step can come just before it: negative ms). A
    node that restarted during the height lists each restart (``at_ms`` when it came back, ``down_ms``);
    the step its restart cut short has no duration."""
    labels = {n.node: n.label for n in store.nodes(run_id)}
    rows = store.query(
        """
        WITH e AS (
            SELECT node, kind, round, step, ts, id, extra,
                   lead(ts) OVER w AS next_ts, lead(kind) OVER w AS next_kind
            FROM events
            WHERE run_id = :run AND height = :height
              AND kind IN ('step', 'timeout_fired', 'block_committed', 'height_end', 'node_restart')
            WINDOW w AS (PARTITION BY node, kind IN ('step', 'node_restart') ORDER BY ts, id)
        )
        SELECT node, kind, round, step, ts,
               CASE WHEN kind <> 'step' OR next_kind = 'step' THEN next_ts END,
               CASE WHEN kind = 'node_restart' THEN extra END
        FROM e ORDER BY node, ts, id
        """,
        {"run": run_id, "height": height},
    )
    starts: dict[int, int] = {}
    for node, kind, _, _, ts, _, _ in rows:  # a node starts the height at its first step there
        if kind == "step":
            starts.setdefault(node, ts)
    nodes: dict[int, dict[str, Any]] = {}
    for node, kind, rnd, step, ts, next_ts, restart in rows:
        entry = nodes.setdefault(node, {"node": labels.get(node, str(node)), "start_ts": starts.get(node, ts),
                                        "steps": [], "timeouts": [], "restarts": [], "committed_ms": None})  # fmt: skip
        since = (ts - entry["start_ts"]) / 1e6
        if kind == "step":
            entry["steps"].append({"round": rnd, "step": step, "at_ms": since,
                                   "duration_ms": None if next_ts is None else (next_ts - ts) / 1e6})  # fmt: skip
        elif kind == "timeout_fired":
            entry["timeouts"].append({"round": rnd, "step": step, "at_ms": since})
        elif kind == "node_restart":
            entry["restarts"].append({"at_ms": since, "down_ms": (ts - json.loads(restart)["down_from_ns"]) / 1e6})
        elif entry["committed_ms"] is None:
            entry["committed_ms"] = since
    for entry in nodes.values():
        entry["start"] = format_ns(entry.pop("start_ts"))
    return [nodes[n] for n in sorted(nodes)]
