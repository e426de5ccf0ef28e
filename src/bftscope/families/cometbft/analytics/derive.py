"""Derived data of a CometBFT run, rebuilt in SQL after each ingest: vote arrivals and deliveries.

**Vote arrivals** — the first receipt of each distinct vote ``(height, round, type, signer)`` at each
receiver, with the latency from the signer's own timestamp (true propagation latency, on two
clocks). Receipts are ``msg_received`` (WAL: the consensus state machine dequeued it; logs: the
reactor's ``Receive``) and ``p2p_recv`` (transport); the earliest wins. A receiver's own votes are
excluded. The signer is identified by its validator index; the index → address map is learned from
events that carry both (so a validator set is assumed fixed within a run).

**Deliveries** — one consensus message sent by A and received by B:
* ``wire``: a ``p2p_send`` on A to B and a ``p2p_recv`` on B from A with identical wire bytes
  (``msg_key``), paired first-in-first-out when the same bytes go over the link more than once;
  sends never received stay with ``recv_ts`` NULL (they count against the delivery rate).
* ``logical``: for WAL runs (no send records), a message A originated (``msg_internal``: own vote,
  proposal, block part) and B received *from A* (``msg_received`` with peer A), matched by message
  key (type, height, round, vote type, validator index, part index).

Each delivery keeps the ids of the two events it paired (``send_event``, ``recv_event``); a receive is paired
at most once, so ``recv_event`` identifies a received delivery (``/events`` ties it to its receive event by it).
Every choice among events is made on ``(ts, id)``, never on ``ts`` alone, so equal timestamps (common: a
log prints microseconds, several receipts share one) are broken the same way on every rebuild.

Peers are resolved to nodes of the run by p2p id; traffic with nodes outside the run is left out.
Everything is plain SQL over the events table: the same statements will run on ClickHouse.
"""

from __future__ import annotations

from contextlib import nullcontext

from bftscope.families.cometbft.analytics.restarts import rebuild as rebuild_restarts
from bftscope.store.base import Store
from bftscope.store.dialect import Dialect

__all__ = ["DERIVED_TABLES", "rebuild"]

DERIVED_TABLES = ("vote_arrivals", "deliveries", "unmatched_receipts")

# An update from height ``:from`` on reads the events of those heights and the events without a height (few:
# messages that name none), and replaces the derived rows of the same heights.
_SCOPE = "AND (height >= :from OR height IS NULL)"
_E_SCOPE = "AND (e.height >= :from OR e.height IS NULL)"
# What needs a height (vote arrivals, logical deliveries: joined on it) reads only the heights: a filter on the
# height alone skips the older row groups, one that also takes NULLs cannot.
_HEIGHTS = "AND height >= :from"


def _idx(d: Dialect, scoped: bool) -> str:
    """Validator index → address. Scoped to heights ≥ ``:from``, the heights below contribute what their
    vote arrivals already resolved (the map is assumed fixed within a run, as in a full rebuild; a vote
    event without a height, which a full rebuild also reads, is not read again)."""
    votes = ("SELECT validator_index, validator FROM events WHERE run_id = :run AND msg_type = 'vote'"
             " AND validator IS NOT NULL AND validator_index IS NOT NULL")  # fmt: skip
    if scoped:
        votes += (f" {_HEIGHTS} UNION ALL SELECT validator_index, validator FROM vote_arrivals"
                  " WHERE run_id = :run AND height < :from AND validator IS NOT NULL")  # fmt: skip
    return f"SELECT validator_index, {d.any_value('validator')} AS validator FROM ({votes}) v GROUP BY validator_index"


def _vote_arrivals(d: Dialect, scoped: bool) -> str:
    scope = _HEIGHTS if scoped else ""
    return f"""
INSERT INTO vote_arrivals
WITH idx AS ({_idx(d, scoped)}), rec AS (
    SELECT node AS receiver, height, round, vote_type, validator_index,
           min(ts) AS first_ts,
           {d.arg_min("signer_ts", "ts")} AS signer_ts,
           {d.arg_min("peer", "ts")} AS first_peer,
           greatest(count(*) FILTER (WHERE kind = 'p2p_recv'), count(*) FILTER (WHERE kind = 'msg_received'))
               AS receipts,
           {d.any_value("validator")} AS validator
    FROM events
    WHERE run_id = :run AND msg_type = 'vote' AND kind IN ('msg_received', 'p2p_recv')
      AND height IS NOT NULL AND round IS NOT NULL AND vote_type IS NOT NULL AND validator_index IS NOT NULL {scope}
    GROUP BY node, height, round, vote_type, validator_index
)
SELECT :run, rec.receiver, sn.node, rec.height, rec.round, rec.vote_type, rec.validator_index,
       coalesce(rec.validator, idx.validator), rec.first_ts, rec.signer_ts, rec.first_ts - rec.signer_ts,
       rec.receipts, rec.first_peer
FROM rec
LEFT JOIN idx USING (validator_index)
LEFT JOIN nodes sn ON sn.run_id = :run AND sn.validator = coalesce(rec.validator, idx.validator)
LEFT JOIN nodes rn ON rn.run_id = :run AND rn.node = rec.receiver
WHERE rn.validator IS NULL OR coalesce(rec.validator, idx.validator) IS NULL
   OR rn.validator <> coalesce(rec.validator, idx.validator)
"""


# Sends and receives of each directed link, numbered in time order per identical wire bytes, so the
# k-th send of some bytes pairs with the k-th receive of the same bytes (first in, first out).
_WIRE_SIDE = """
SELECT {sender} AS sender, {receiver} AS receiver, e.msg_key, e.ts, e.id, e.msg_type, e.height, e.round,
       e.vote_type, e.validator_index, e.part_index
FROM events e {join} nodes pn ON pn.run_id = e.run_id AND pn.p2p_id = e.peer
WHERE e.run_id = :run AND e.kind = '{kind}' {scope}
"""


def _sends(scope: str) -> str:
    return _WIRE_SIDE.format(sender="e.node", receiver="pn.node", join="JOIN", kind="p2p_send", scope=scope)


def _receives(scope: str) -> str:
    # Receives from peers outside the run are kept (sender NULL) so they count as unmatched.
    return _WIRE_SIDE.format(sender="pn.node", receiver="e.node", join="LEFT JOIN", kind="p2p_recv", scope=scope)
# Numbering sorts the whole side; usually the same bytes cross a link only once, every k is 1 and a
# grouping (several times cheaper) tells so.
_HAS_REPEATS = "SELECT EXISTS (SELECT 1 FROM {name} GROUP BY sender, receiver, msg_key HAVING count(*) > 1)"


def _numbered(d: Dialect, name: str) -> str:
    # keeps ``id``: a delivery records the two events it paired (send_event, recv_event)
    return d.temp_table(name, f"SELECT *, row_number() OVER (PARTITION BY sender, receiver, msg_key ORDER BY ts, id)"
                              f" AS k FROM {name}")


_ALL_FIRST = "ALTER TABLE {name} ADD COLUMN k BIGINT DEFAULT 1"

# Named columns: the pair's two event ids came after the rest (migration 007).
_COLS = ("run_id, sender, receiver, msg_type, height, round, vote_type, validator_index, part_index, sent_ts, recv_ts,"
         " latency_ns, matched_by, send_event, recv_event")
_WIRE_DELIVERIES = """
INSERT INTO deliveries ({cols})
SELECT :run, s.sender, s.receiver, s.msg_type, s.height, s.round, s.vote_type, s.validator_index, s.part_index,
       s.ts, r.ts, r.ts - s.ts, 'wire', s.id, r.id
FROM _sends s LEFT JOIN _receives r USING (sender, receiver, msg_key, k)
""".replace("{cols}", _COLS)

_WIRE_UNMATCHED = """
INSERT INTO unmatched_receipts
SELECT :run, r.sender, r.receiver, r.msg_type, count(*), r.height
FROM _receives r LEFT JOIN _sends s USING (sender, receiver, msg_key, k)
WHERE s.k IS NULL
GROUP BY r.sender, r.receiver, r.msg_type, r.height
"""

# Only for senders whose own messages are recorded (WAL) and who sent none over the wire in logs.
def _logical_deliveries(d: Dialect, scoped: bool) -> str:
    scope, e_scope = (_HEIGHTS, _HEIGHTS.replace("height", "e.height")) if scoped else ("", "")
    return f"""
INSERT INTO deliveries ({_COLS})
WITH o AS (
    SELECT node AS sender, msg_type, height, round, coalesce(vote_type, '') AS vt, coalesce(validator_index, -1) AS vi,
           coalesce(part_index, -1) AS pi, min(ts) AS ts, {d.arg_min("id", "(ts, id)")} AS id
    FROM events
    WHERE run_id = :run AND kind = 'msg_internal'
      AND node NOT IN (SELECT DISTINCT node FROM events WHERE run_id = :run AND kind = 'p2p_send') {scope}
    GROUP BY node, msg_type, height, round, coalesce(vote_type, ''), coalesce(validator_index, -1),
             coalesce(part_index, -1)
), r AS (
    SELECT pn.node AS sender, e.node AS receiver, e.msg_type, e.height, e.round, coalesce(e.vote_type, '') AS vt,
           coalesce(e.validator_index, -1) AS vi, coalesce(e.part_index, -1) AS pi, min(e.ts) AS ts,
           {d.arg_min("e.id", "(e.ts, e.id)")} AS id
    FROM events e JOIN nodes pn ON pn.run_id = e.run_id AND pn.p2p_id = e.peer
    WHERE e.run_id = :run AND e.kind = 'msg_received' {e_scope}
    GROUP BY pn.node, e.node, e.msg_type, e.height, e.round, coalesce(e.vote_type, ''),
             coalesce(e.validator_index, -1), coalesce(e.part_index, -1)
)
SELECT :run, o.sender, r.receiver, o.msg_type, o.height, o.round, nullif(o.vt, ''), nullif(o.vi, -1),
       nullif(o.pi, -1), o.ts, r.ts, r.ts - o.ts, 'logical', o.id, r.id
FROM o JOIN r USING (sender, msg_type, height, round, vt, vi, pi)
"""


# Logical deliveries start from msg_internal events (WAL runs only); without any, the statement
# would still aggregate every msg_received event only to join it with nothing.
_HAS_INTERNAL = "SELECT EXISTS (SELECT 1 FROM events WHERE run_id = ? AND kind = 'msg_internal')"


def rebuild(store: Store, run_id: int, from_height: int | None = None) -> dict[str, int]:
    """Recompute the run's derived tables — all of them, or only the rows of heights ``>= from_height`` (and
    of messages without a height) from the events of those heights — in one transaction; returns the row
    count of each table.

    Every derived row belongs to one height and is computed from events of that height only (a vote's
    arrivals, a message's send and receipts), so replacing the rows of the heights that got new events gives
    the rows a full rebuild gives. Two parts are whole-run: node restarts (from silences in a node's records)
    are recomputed over the events the run holds, and the validator index → address map also reads what
    the earlier heights' vote arrivals resolved.
    """
    scoped = from_height is not None
    given: dict[str, int] = {"run": run_id} | ({"from": from_height} if from_height is not None else {})
    d = store.dialect

    def run(sql: str) -> list[tuple[object, ...]]:  # with the parameters the statement names
        return store.execute(sql, {k: v for k, v in given.items() if f":{k}" in sql})

    # A full rebuild runs outside a transaction (on a large run one would hold every new row in memory until
    # the end); the run's derived version already marks it incomplete until it is done.
    with store.transaction() if scoped else nullcontext():
        for table in DERIVED_TABLES:
            scope = "AND height >= :from" if table == "vote_arrivals" else _SCOPE
            run(f"DELETE FROM {table} WHERE run_id = :run {scope if scoped else ''}")
        restarts = rebuild_restarts(store, run_id)
        run(_vote_arrivals(d, scoped))
        for name, sql in (("_sends", _sends(_E_SCOPE if scoped else "")),
                          ("_receives", _receives(_E_SCOPE if scoped else ""))):  # fmt: skip
            run(d.temp_table(name, sql))
            repeats = store.execute(_HAS_REPEATS.format(name=name))[0][0]  # temp tables: the writer's
            store.execute(_numbered(d, name) if repeats else _ALL_FIRST.format(name=name))
        run(_WIRE_DELIVERIES)
        run(_WIRE_UNMATCHED)
        if store.execute(_HAS_INTERNAL, [run_id])[0][0]:
            run(_logical_deliveries(d, scoped))
        for table in ("_sends", "_receives"):
            store.execute(f"DROP TABLE IF EXISTS {table}")
        counts = {table: int(store.execute(f"SELECT count(*) FROM {table} WHERE run_id = ?", [run_id])[0][0])
                  for table in DERIVED_TABLES}  # fmt: skip
    counts["node_restarts"] = restarts
    return counts
