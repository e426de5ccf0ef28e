"""How the CometBFT family renders its events on ``/events``: the original's JSON names (cursors are the API's,
:mod:`bftscope.api.eventpage`).

Each event keeps bftscope's own columns and adds the original's names (``eventType``, ``timestamp``,
``nodeId``, ``currentHeight``/``currentRound``/``currentStep`` on steps, ``vote`` on votes, ``part`` on block
parts, ``proposal`` on proposals, ``recipientPeerId``/``sourcePeerId`` on transport messages) so the
frontend's trace view can read them. Events of a WAL get the names of the same observation in a log
(the consensus state dequeuing a proposal is ``receivedProposal``; entering the propose step is
``proposeStep`` with ``isOurTurn``).

The confirmed exchanges of the original's ``tracer_events`` (``p2pVote``, ``p2pBlockPart``, …) are the rows of
``deliveries`` (analytics/derive.py), interleaved as entries of kind ``delivery`` on the receiver at the receive
time, carrying ``senderPeerId``, ``recipientPeerId``, ``sentTime``, ``receivedTime`` and ``latency`` (ns). Each
takes its message fields and its place in the order from the receive event it was matched with (derive.py keeps
that event's id, ``deliveries.recv_event``; no two deliveries share one): its id is that event's id plus
:data:`DELIVERY_ID`, so ids are unique, it sorts right after the events of the same nanosecond, and cursors stay
exact. Ids are the store's: two ingests of the same files give the same ids when the files are read in one
process (below 32 MB); parallel parsing numbers events in the order batches arrive, so there the ids (and the
order of entries of the same nanosecond) can differ between two ingests — each is stable within its store.

Fields a message carries only in part are completed from the same message seen elsewhere in the run: a
vote's block hash and signer address from any record of that vote ``(height, round, type, index)`` (a
reactor log line prints only fingerprints), a block id's part-set header and a block part's proof total
from the proposal of that block / round. These lookups depend on the run's data only: :func:`lookup_tables`
builds them once and the route keeps them with the run's other cached facts.

bftscope's columns are on every entry (null where a row has none); the original's fields of one kind of
entry (``currentStep``, ``vote``, ``part``, ``recipientPeerId``, the exchange's fields, …) only on that kind.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
import pyarrow as pa

from bftscope.api.eventpage import DELIVERY_ID, decode_cursor, encode_cursor
from bftscope.families.cometbft.parse.proto_ref import MSG_TYPES
from bftscope.store.base import Store
from bftscope.store.dialect import Dialect
from bftscope.store.eventquery import DELIVERY, EVENT_COLUMNS, EventFilter
from bftscope.timeutil import format_ns

__all__ = ["DELIVERY_ID", "Lookups", "decode_cursor", "encode_cursor", "event_json", "fetch_page", "lookup_tables",
           "lookups"]

_STEP_TYPES = {
    "new_height": "enteringNewHeight", "new_round": "enteringNewRound", "propose": "enteringProposeStep",
    "prevote": "enteringPrevoteStep", "prevote_wait": "enteringPrevoteWaitStep", "precommit": "enteringPrecommitStep",
    "precommit_wait": "enteringPrecommitWaitStep", "commit": "enteringCommitStep",
}  # fmt: skip
_KIND_TYPES = {
    "proposer_turn": "proposeStep", "proposal_received": "receivedProposal",
    "block_complete": "receivedCompleteProposalBlock", "block_committed": "committedBlock",
    "timeout_scheduled": "scheduledTimeout", "timeout_fired": "timedOut",
}  # fmt: skip
_PREFIX = {"p2p_send": "send", "p2p_recv": "receivePacket", "msg_received": "receive", "msg_internal": "own"}
_MSG_NAMES = {"proposal_pol": "ProposalPOL"}  # the original's spelling; others are CamelCase of msg_type
WAL_FORMAT = "cometbft-wal"


def _camel(snake: str) -> str:
    head, *rest = snake.split("_")
    return head + "".join(p.title() for p in rest)


def _msg_name(msg_type: str) -> str:
    return _MSG_NAMES.get(msg_type) or _camel(msg_type)[:1].upper() + _camel(msg_type)[1:]


def event_type(kind: str, step: str | None, msg_type: str | None, wal: bool = False) -> str:
    if kind == DELIVERY and msg_type:
        return "p2p" + _msg_name(msg_type)
    if wal and kind == "step" and step == "propose":
        return "proposeStep"
    if wal and kind == "msg_received" and msg_type == "proposal":
        return "receivedProposal"
    if kind == "step" and step:
        return _STEP_TYPES.get(step, _camel("entering_" + step))
    if kind in _PREFIX and msg_type:
        return _PREFIX[kind] + _msg_name(msg_type)
    return _KIND_TYPES.get(kind, _camel(kind))


@dataclass
class Lookups:
    """What completes partial messages (see the module docstring); keys as in the SQL below."""

    ids: dict[int, str]  # node → p2p id (or label)
    labels: dict[int, str]
    vals: dict[int, str | None]
    formats: dict[int, str]  # source → format
    votes: dict[tuple[Any, ...], tuple[str | None, str | None]]  # (h, r, type, index) → (block hash, address)
    signers: dict[int, str | None]  # validator index → address
    blocks: dict[tuple[int, str], tuple[int | None, str | None]]  # (h, block hash) → (parts total, parts hash)
    rounds: dict[tuple[int, int], tuple[int | None, int | None, str | None]]  # (h, r) → (total, own node, proposer)


def lookups(store: Store, run_id: int) -> Lookups:
    """The whole run's :class:`Lookups` — the readable definition the page's SQL is tested against."""
    nodes = store.nodes(run_id)
    q = store.query
    return Lookups(
        ids={n.node: n.p2p_id or n.label for n in nodes}, labels={n.node: n.label for n in nodes},
        vals={n.node: n.validator for n in nodes},
        formats={int(r[0]): str(r[1]) for r in q("SELECT id, format FROM sources WHERE run_id = ?", [run_id])},
        votes={(r[0], r[1], r[2], r[3]): (r[4], r[5]) for r in q(_VOTES, [run_id])},
        signers={r[0]: r[1] for r in q(_SIGNERS, [run_id])},
        blocks={(r[0], r[1]): (r[2], r[3]) for r in q(_BLOCKS, [run_id])},
        rounds={(r[0], r[1]): (r[2], r[3], r[4]) for r in q(_ROUNDS, [run_id])},
    )  # fmt: skip


def lookup_tables(store: Store, run_id: int) -> dict[str, pa.Table]:
    """The whole run's lookups as the small Arrow tables the page query joins (:func:`fetch_page`): they depend
    on the run's data only, so a server keeps them with the run's other cached facts instead of aggregating
    every vote of the page's heights again for each page (a sixth of a page's time)."""
    return {name: store.query_arrow(sql, [run_id])
            for name, sql in (("lk_votes", _VOTES), ("lk_signers", _SIGNERS), ("lk_blocks", _BLOCKS),
                              ("lk_rounds", _ROUNDS))}  # fmt: skip


def _ns(ns: int | None) -> str | None:
    return format_ns(ns) if ns is not None else None


def event_json(e: dict[str, Any], lk: Lookups) -> dict[str, Any]:
    """One page entry; ``e`` has the events' columns (deliveries add ``sender sent_ts latency_ns matched_by``)."""
    node, kind, extra = e["node"], e["kind"], orjson.loads(e["extra"]) if e["extra"] else None
    wal = lk.formats.get(e["source"]) == WAL_FORMAT
    out: dict[str, Any] = {
        "id": e["id"], "eventType": event_type(kind, e["step"], e["msg_type"], wal), "kind": kind,
        "timestamp": format_ns(e["ts"]), "nodeId": lk.ids.get(node, ""), "node": lk.labels.get(node, ""),
        "validatorAddress": lk.vals.get(node) or "", "height": e["height"], "round": e["round"],
    }  # fmt: skip
    for col in ("step", "msg_type", "vote_type", "validator", "validator_index", "part_index", "peer", "block_hash"):
        if e[col] is not None:
            out[_camel(col)] = e[col]
    if kind == "step":
        out.update(currentHeight=e["height"], currentRound=e["round"], currentStep=e["step"])
    rnd = lk.rounds.get((e["height"], e["round"]), (None, None, None))
    if e["msg_type"] == "vote":
        block, signer = lk.votes.get((e["height"], e["round"], e["vote_type"], e["validator_index"]), (None, None))
        block = e["block_hash"] or block
        total, parts_hash = lk.blocks.get((e["height"], block), (None, None)) if block else (None, None)
        out["vote"] = {"type": e["vote_type"], "height": e["height"], "round": e["round"],
                       "validatorIndex": e["validator_index"],
                       "validatorAddress": e["validator"] or signer or lk.signers.get(e["validator_index"]) or "",
                       "timestamp": _ns(e["signer_ts"]),
                       "blockId": {"hash": block or "", "partSetHeader": {"total": total or 0,
                                                                          "hash": parts_hash or ""}}}  # fmt: skip
    if e["msg_type"] == "block_part":
        total = (extra or {}).get("total")
        total = total if total is not None else rnd[0]
        out["part"] = {"index": e["part_index"], "proof": {"total": total, "index": e["part_index"]}}
    if kind == "block_complete":
        out["hash"] = e["block_hash"] or ""
    if e["msg_type"] == "proposal":
        x = extra or {}
        known = lk.blocks.get((e["height"], e["block_hash"]), (None, None))[1] if e["block_hash"] else None
        out["proposal"] = {"height": e["height"], "round": e["round"], "polRound": x.get("pol_round"),
                           "blockId": {"hash": e["block_hash"] or "", "partSetHeader": {
                               "total": x.get("parts_total") or 0, "hash": x.get("parts_hash") or known or ""}},
                           "timestamp": _ns(e["signer_ts"])}  # fmt: skip
    if e["peer"]:
        out["recipientPeerId" if kind == "p2p_send" else "sourcePeerId"] = e["peer"]
    own = lk.vals.get(rnd[1]) if rnd[1] is not None else None
    if kind == "proposer_turn":
        out["isOurTurn"] = bool((extra or {}).get("our_turn"))
        out["proposer"] = e["validator"] or ""
    elif (wal and kind == "step" and e["step"] == "propose") or e["msg_type"] == "proposal":
        out["proposer"] = e["validator"] or rnd[2] or own or ""
    if wal and kind == "step" and e["step"] == "propose":
        out["isOurTurn"] = rnd[1] is not None and rnd[1] == node
    if kind == DELIVERY:
        out.update(status="confirmed", senderPeerId=lk.ids.get(e["sender"], ""), recipientPeerId=lk.ids.get(node, ""),
                   sentTime=format_ns(e["sent_ts"]), receivedTime=format_ns(e["ts"]), latency=e["latency_ns"],
                   matchedBy=e["matched_by"])  # fmt: skip
    if extra is not None:
        out["extra"] = extra
    return out


def list_entries(store: Store, run_id: int, flt: EventFilter) -> list[dict[str, Any]]:
    """Every entry of a page in ``(ts, id)`` order, the plain way: the readable definition of :func:`fetch_page`."""
    out: list[dict[str, Any]] = []
    if flt.wants_events:
        where, params = flt.where(run_id)
        cols = ", ".join(("source", *EVENT_COLUMNS))
        out += [dict(zip(("source", *EVENT_COLUMNS), r, strict=True))
                for r in store.query(f"SELECT {cols} FROM events WHERE {where}", params)]  # fmt: skip
    if flt.wants_deliveries:
        where, params = flt.delivery_where(run_id)
        names = ("receiver", "recv_ts", "height", "round", "vote_type", "msg_type", "validator_index", "part_index",
                 "sender", "sent_ts", "latency_ns", "matched_by", "recv_event")  # fmt: skip
        cols = ", ".join(f"d.{n}" for n in names)
        # each delivery takes its receive event's other fields, looked up by the id derive.py kept
        ev_cols = ("source", *EVENT_COLUMNS)
        received = {r[1]: dict(zip(ev_cols, r, strict=True)) for r in store.query(
            f"SELECT {', '.join(ev_cols)} FROM events WHERE run_id = ? AND kind IN ('p2p_recv', 'msg_received')",
            [run_id])}  # fmt: skip
        for row in store.query(f"SELECT {cols} FROM deliveries d WHERE {where}", params):
            d = dict(zip(names, row, strict=True))
            r = received[d["recv_event"]]
            out.append({**r, "id": d["recv_event"] + DELIVERY_ID, "node": d["receiver"], "ts": d["recv_ts"],
                        "kind": DELIVERY, "step": None, **{k: d[k] for k in names[2:12]}})  # fmt: skip
    out.sort(key=lambda e: (e["ts"], e["id"]))
    return out


# The lookups (see ``Lookups``), of the whole run (the page query reads them from :func:`lookup_tables`).
_VOTES = ("SELECT height, round, vote_type, validator_index, min(block_hash) AS block_hash, min(validator) AS validator"
          " FROM events WHERE run_id = ? AND msg_type = 'vote' AND height IS NOT NULL AND round IS NOT NULL"
          " AND vote_type IS NOT NULL AND validator_index IS NOT NULL"
          " GROUP BY height, round, vote_type, validator_index")
_SIGNERS = ("SELECT validator_index, min(validator) AS validator FROM events WHERE run_id = ? AND msg_type = 'vote'"
            " AND validator_index IS NOT NULL AND validator IS NOT NULL GROUP BY validator_index")
_BLOCKS = ("SELECT height, block_hash, max(json_extract(extra, '$.parts_total')::BIGINT) AS total,"
           " max(json_extract_string(extra, '$.parts_hash')) AS parts_hash FROM events WHERE run_id = ?"
           " AND msg_type = 'proposal' AND height IS NOT NULL AND block_hash IS NOT NULL GROUP BY height, block_hash")
_ROUNDS = ("SELECT height, round, max(json_extract(extra, '$.parts_total')::BIGINT) AS total,"
           " max(node) FILTER (WHERE kind = 'msg_internal') AS own_node, max(validator) AS proposer"
           " FROM events WHERE run_id = ? AND msg_type = 'proposal' AND height IS NOT NULL"
           " AND round IS NOT NULL GROUP BY height, round")

# A delivery and the receive event it was matched with (its message fields, source and id); one per delivery.
_ENTRY_NAMES = ("run_id", "source", "id", "node", "ts", "kind", "height", "round", "step", "vote_type", "msg_type",
                "validator", "validator_index", "part_index", "peer", "block_hash", "signer_ts", "extra", "sender",
                "sent_ts", "latency_ns", "matched_by")  # fmt: skip
_EVENT_COLS = ", ".join(_ENTRY_NAMES[:18]) + (", NULL::INTEGER AS sender, NULL::BIGINT AS sent_ts,"
                                               " NULL::BIGINT AS latency_ns, NULL::VARCHAR AS matched_by")
_DELIVERY_COLS = ", ".join(f"{x} AS {name}" for x, name in zip((
    "d.run_id", "r.source", f"d.recv_event + {DELIVERY_ID}", "d.receiver", "d.recv_ts", f"'{DELIVERY}'", "d.height",
    "d.round", "NULL::VARCHAR", "d.vote_type", "d.msg_type", "r.validator", "d.validator_index", "d.part_index",
    "r.peer", "r.block_hash", "r.signer_ts", "r.extra", "d.sender", "d.sent_ts", "d.latency_ns", "d.matched_by"),
    _ENTRY_NAMES, strict=True))  # fmt: skip

# The receive event a delivery paired (derive.py keeps its id): one per delivery, and no two deliveries share one.
_RECEIVE_JOIN = "JOIN events r ON r.run_id = d.run_id AND r.id = d.recv_event"

# The page is rendered to JSON by DuckDB itself (one vectorised pass instead of a Python dict per event):
# 10 000 events take ~10 ms to render this way against ~220 ms in Python. ``event_json`` above is the
# readable definition of the same shape; a test pins the two together.


def _ts(d: Dialect, c: str) -> str:
    return (f"strftime({d.ns_to_timestamp(c)}, '%Y-%m-%dT%H:%M:%S') || '.'"
            f" || lpad(({c} % 1000000000)::VARCHAR, 9, '0') || 'Z'")


_CAMEL = "list_aggr(list_transform(string_split({c}, '_'), lambda x: upper(x[1]) || x[2:]), 'string_agg', '')"
_STEP_CASE = " ".join(f"WHEN '{k}' THEN '{v}'" for k, v in _STEP_TYPES.items())
_KIND_CASE = " ".join(f"WHEN e.kind = '{k}' THEN '{v}'" for k, v in _KIND_TYPES.items())
_PREFIX_CASE = " ".join(f"WHEN '{k}' THEN '{v}'" for k, v in _PREFIX.items())
# Known message types by literal (a lambda per row costs more than the rest of the rendering), others computed.
_MSG = " ".join(f"WHEN '{k}' THEN '{_msg_name(k)}'" for k in MSG_TYPES.values())
_MSG = f"CASE e.msg_type {_MSG} ELSE upper(e.msg_type[1]) || {_CAMEL.format(c='e.msg_type')}[2:] END"
_WAL = f"s.format = '{WAL_FORMAT}'"
_BLOCK = "coalesce(e.block_hash, vk.block_hash)"
_PROPOSER = "coalesce(e.validator, rk.proposer, own.validator, '')"
_EVENT_TYPE = f"""CASE
    WHEN e.kind = '{DELIVERY}' THEN 'p2p' || {_MSG}
    WHEN {_WAL} AND e.kind = 'step' AND e.step = 'propose' THEN 'proposeStep'
    WHEN {_WAL} AND e.kind = 'msg_received' AND e.msg_type = 'proposal' THEN 'receivedProposal'
    WHEN e.kind = 'step' AND e.step IS NOT NULL
      THEN CASE e.step {_STEP_CASE} ELSE 'entering' || {_CAMEL.format(c="e.step")} END
    WHEN e.kind IN ('p2p_send', 'p2p_recv', 'msg_received', 'msg_internal') AND e.msg_type IS NOT NULL
      THEN (CASE e.kind {_PREFIX_CASE} END) || {_MSG}
    {_KIND_CASE}
    ELSE lower({_CAMEL.format(c="e.kind")}[1]) || {_CAMEL.format(c="e.kind")}[2:] END"""
_WAL_PROPOSE = f"{_WAL} AND e.kind = 'step' AND e.step = 'propose'"

# Every field as a column of the page (``f_<name>``), computed once per row: the fields of one kind of entry
# only on its rows (a CASE evaluates its branch on those rows alone).
def _fields(d: Dialect) -> dict[str, str]:
    part_set = d.struct({"total": "coalesce(bk.total, 0)", "hash": "coalesce(bk.parts_hash, '')"})
    vote = d.struct({
        "type": "e.vote_type", "height": "e.height", "round": "e.round", "validatorIndex": "e.validator_index",
        "validatorAddress": "coalesce(nullif(e.validator, ''), vk.validator, sg.validator, '')",
        "timestamp": _ts(d, "e.signer_ts"),
        "blockId": d.struct({"hash": f"coalesce({_BLOCK}, '')", "partSetHeader": part_set})})
    part = d.struct({"index": "e.part_index", "proof": d.struct({
        "total": "coalesce(json_extract(e.extra, '$.total')::BIGINT, rk.total)", "index": "e.part_index"})})
    proposal = d.struct({
        "height": "e.height", "round": "e.round", "polRound": "json_extract(e.extra, '$.pol_round')::BIGINT",
        "blockId": d.struct({"hash": "coalesce(e.block_hash, '')", "partSetHeader": d.struct({
            "total": "coalesce(json_extract(e.extra, '$.parts_total')::BIGINT, 0)",
            "hash": "coalesce(json_extract_string(e.extra, '$.parts_hash'), bk.parts_hash, '')"})}),
        "timestamp": _ts(d, "e.signer_ts")})
    return {
    "id": "e.id", "eventType": _EVENT_TYPE, "kind": "e.kind", "timestamp": _ts(d, "e.ts"),
    "nodeId": "coalesce(n.p2p_id, n.label, '')", "node": "coalesce(n.label, '')",
    "validatorAddress": "coalesce(n.validator, '')", "height": "e.height", "round": "e.round", "step": "e.step",
    "msgType": "e.msg_type", "voteType": "e.vote_type", "validator": "e.validator",
    "validatorIndex": "e.validator_index", "partIndex": "e.part_index", "peer": "e.peer", "blockHash": "e.block_hash",
    "currentHeight": "CASE WHEN e.kind = 'step' THEN e.height END",
    "currentRound": "CASE WHEN e.kind = 'step' THEN e.round END",
    "currentStep": "CASE WHEN e.kind = 'step' THEN e.step END",
    "vote": f"CASE WHEN e.msg_type = 'vote' THEN {vote} END",
    "recipientPeerId": f"""CASE WHEN e.kind = 'p2p_send' THEN nullif(e.peer, '')
      WHEN e.kind = '{DELIVERY}' THEN coalesce(n.p2p_id, n.label, '') END""",
    "sourcePeerId": "CASE WHEN e.kind <> 'p2p_send' THEN nullif(e.peer, '') END",
    "isOurTurn": f"""CASE WHEN e.kind = 'proposer_turn'
      THEN coalesce(json_extract(e.extra, '$.our_turn')::BOOLEAN, false)
      WHEN {_WAL_PROPOSE} THEN coalesce(rk.own_node = e.node, false) END""",
    "part": f"CASE WHEN e.msg_type = 'block_part' THEN {part} END",
    "hash": "CASE WHEN e.kind = 'block_complete' THEN coalesce(e.block_hash, '') END",
    "proposal": f"CASE WHEN e.msg_type = 'proposal' THEN {proposal} END",
    "proposer": f"""CASE WHEN e.kind = 'proposer_turn' THEN coalesce(e.validator, '')
      WHEN {_WAL_PROPOSE} OR e.msg_type = 'proposal' THEN {_PROPOSER} END""",
    "status": "'confirmed'", "senderPeerId": "coalesce(sn.p2p_id, sn.label, '')",
    "sentTime": _ts(d, "e.sent_ts"), "receivedTime": _ts(d, "e.ts"), "latency": "e.latency_ns",
    "matchedBy": "e.matched_by", "extra": "json(e.extra)",
    }  # fmt: skip
# The fields of every entry (bftscope's columns, null where a row has none), then those of its kind, present only
# on it: serializing every field of every row, most of them null, cost more than the rest of the page together.
_COMMON = ["id", "eventType", "kind", "timestamp", "nodeId", "node", "validatorAddress", "height", "round", "step",
           "msgType", "voteType", "validator", "validatorIndex", "partIndex", "peer", "blockHash", "extra"]
_STEP, _TURN = ["currentHeight", "currentRound", "currentStep", "sourcePeerId"], ["isOurTurn", "proposer"]
_EXCHANGE = ["recipientPeerId", "sourcePeerId", "status", "senderPeerId", "sentTime", "receivedTime", "latency",
             "matchedBy"]  # fmt: skip
_BY_MSG = [("'vote'", ["vote"]), ("'block_part'", ["part"]), ("'proposal'", ["proposal", "proposer"])]
_SHAPES = [
    ("f_isOurTurn IS NOT NULL AND f_kind = 'step'", _STEP + _TURN), ("f_kind = 'step'", _STEP),
    ("f_kind = 'proposer_turn'", [*_TURN, "sourcePeerId"]), ("f_kind = 'block_complete'", ["hash", "sourcePeerId"]),
    *[(f"f_kind = '{kind}' AND f_msgType = {m}", [*peer, *more])
      for kind, peer in ((DELIVERY, _EXCHANGE), ("p2p_send", ["recipientPeerId"])) for m, more in _BY_MSG],
    (f"f_kind = '{DELIVERY}'", _EXCHANGE), ("f_kind = 'p2p_send'", ["recipientPeerId"]),
    *[(f"f_msgType = {m}", ["sourcePeerId", *more]) for m, more in _BY_MSG],
]  # fmt: skip


def _object(d: Dialect, names: list[str]) -> str:
    return d.to_json(d.struct({n: f"f_{n}" for n in names}))


_RENDERED: dict[str, str] = {}  # the rendering query of each engine, built on first use


def _render(d: Dialect) -> str:
    """The page's rendering query in the store's dialect."""
    if d.name in _RENDERED:
        return _RENDERED[d.name]
    # One object per row, of the fields of its kind.
    objects = ("CASE " + " ".join(f"WHEN {cond} THEN {_object(d, _COMMON + more)}" for cond, more in _SHAPES)
               + f" ELSE {_object(d, [*_COMMON, 'sourcePeerId'])} END")  # fmt: skip
    sql = _RENDERED[d.name] = f"""
SELECT ts, id, {objects} FROM (SELECT e.ts, e.id, {", ".join(f"{x} AS f_{k}" for k, x in _fields(d).items())}
FROM page e
LEFT JOIN nodes n ON n.run_id = e.run_id AND n.node = e.node
LEFT JOIN nodes sn ON sn.run_id = e.run_id AND sn.node = e.sender
LEFT JOIN sources s ON s.id = e.source
LEFT JOIN lk_votes vk ON e.msg_type = 'vote' AND vk.height = e.height AND vk.round = e.round
    AND vk.vote_type = e.vote_type AND vk.validator_index = e.validator_index
LEFT JOIN lk_signers sg ON e.msg_type = 'vote' AND sg.validator_index = e.validator_index
LEFT JOIN lk_blocks bk ON e.msg_type IN ('vote', 'proposal') AND bk.height = e.height AND bk.block_hash = {_BLOCK}
LEFT JOIN lk_rounds rk ON rk.height = e.height AND rk.round = e.round
LEFT JOIN nodes own ON own.run_id = e.run_id AND own.node = rk.own_node) x
ORDER BY ts, id"""  # fmt: skip
    return sql


def _bounds(ts: str, ident: str, after: tuple[int, int] | None, before: tuple[int, int] | None,
            lo: int, hi: int, width: int) -> tuple[list[str], list[Any], bool]:
    """Keyset and time-slice clauses on the columns ``ts``/``ident``; and whether the slice is bounded."""
    if before is not None:
        clauses, args = [f"({ts} < ? OR ({ts} = ? AND {ident} < ?))"], [before[0], before[0], before[1]]
        start = before[0] - width
        if start > lo:
            return [*clauses, f"{ts} >= ?"], [*args, start], True
        return clauses, args, False
    base = after[0] if after is not None else lo
    clauses, args = [], []
    if after is not None:
        clauses, args = [f"({ts} > ? OR ({ts} = ? AND {ident} > ?))"], [after[0], after[0], after[1]]
    if base + width < hi:
        return [*clauses, f"{ts} <= ?"], [*args, base + width], True
    return clauses, args, False


def fetch_page(
    store: Store,
    run_id: int,
    flt: EventFilter,
    *,
    limit: int,
    after: tuple[int, int] | None,
    before: tuple[int, int] | None,
    offset: int,
    span: tuple[int, int, int],
    tables: dict[str, pa.Table] | None = None,
) -> list[tuple[int, int, str]]:
    """Up to ``limit`` entries (events and deliveries) as ``(ts, id, json)`` in ``(ts, id)`` order, strictly after
    ``after`` or just before ``before``, skipping ``offset`` first.

    ``span`` = (events, first ts, last ts) of the run. A top-N over the whole run would read every row; the
    query is first bounded to a time slice expected to hold ~4× the events needed (events are stored in
    time-ordered row groups, so the slice prunes most of them), widened ×8 until it holds enough.
    ``tables``: the run's :func:`lookup_tables` if the caller keeps them (else computed here).
    """
    if tables is None:
        tables = lookup_tables(store, run_id)
    count, lo, hi = span
    need = limit + offset
    width = max(1, (hi - lo) * 4 * need // max(count, 1))
    desc = " DESC" if before is not None else ""
    while True:
        parts, args = [], []
        if flt.wants_events:
            where, params = flt.where(run_id)
            clauses, more, bounded = _bounds("ts", "id", after, before, lo, hi, width)
            parts.append(f"(SELECT {_EVENT_COLS} FROM events WHERE {' AND '.join([where, *clauses])}"
                         f" ORDER BY ts{desc}, id{desc} LIMIT {need})")  # fmt: skip
            args += [*params, *more]
        if flt.wants_deliveries:
            where, params = flt.delivery_where(run_id)
            ident = f"(d.recv_event + {DELIVERY_ID})"
            clauses, more, bounded = _bounds("d.recv_ts", ident, after, before, lo, hi, width)
            # the receive events in the same slice (r.ts = d.recv_ts): the join's probe side prunes row groups too
            same, again, _ = _bounds("r.ts", ident, after, before, lo, hi, width)
            parts.append(f"(SELECT {_DELIVERY_COLS} FROM deliveries d {_RECEIVE_JOIN}"
                         f" WHERE {' AND '.join([where, *clauses, *same])}"
                         f" ORDER BY d.recv_ts{desc}, d.recv_event{desc} LIMIT {need})")  # fmt: skip
            args += [*params, *more, *again]
        page = f"SELECT * FROM ({' UNION ALL '.join(parts)}) u ORDER BY ts{desc}, id{desc} LIMIT ? OFFSET ?"
        rows = store.query_with(f"WITH page AS ({page}) {_render(store.dialect)}", [*args, limit, offset], tables)
        if len(rows) == limit or not bounded:
            return [(int(r[0]), int(r[1]), str(r[2])) for r in rows]
        width *= 8

