"""The ``/events`` page: cursors, and events in the original's JSON names.

Cursors are opaque ``c_<ns>_<id>`` strings naming the last (or first) event returned; pages continue
strictly after ``(timestamp, id)``, so following ``nextCursor`` never repeats or skips an event however
many share a timestamp. For the original's clients an RFC 3339 time is accepted as a cursor too
(``cursor=T``: events after T; ``before=T``: the page just before T).

Each event keeps bftscope's own columns and adds the original's names (``eventType``, ``timestamp``,
``nodeId``, ``currentHeight``/``currentRound``/``currentStep`` on steps, ``vote`` on votes,
``recipientPeerId``/``sourcePeerId`` on transport messages) so the frontend's trace view can read them.
"""

from __future__ import annotations

from typing import Any

import orjson

from bftscope.errors import InputError
from bftscope.timeutil import format_ns, parse_rfc3339_ns

__all__ = ["decode_cursor", "encode_cursor", "event_json"]

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
MAX_ID = 2**62


def _camel(snake: str) -> str:
    head, *rest = snake.split("_")
    return head + "".join(p.title() for p in rest)


def event_type(kind: str, step: str | None, msg_type: str | None) -> str:
    if kind == "step" and step:
        return _STEP_TYPES.get(step, _camel("entering_" + step))
    if kind in _PREFIX and msg_type:
        return _PREFIX[kind] + _camel(msg_type)[:1].upper() + _camel(msg_type)[1:]
    return _KIND_TYPES.get(kind, _camel(kind))


def encode_cursor(ts: int, event_id: int) -> str:
    return f"c_{ts}_{event_id}"


def decode_cursor(text: str, what: str, *, after: bool) -> tuple[int, int]:
    """An opaque cursor, or an RFC 3339 time (after it: every event at that time is passed)."""
    if text.startswith("c_"):
        try:
            ts, event_id = (int(x) for x in text[2:].split("_"))
        except ValueError:
            raise InputError(f"invalid {what} format, use the cursor returned by the API or RFC3339") from None
        return ts, event_id
    try:
        return parse_rfc3339_ns(text), MAX_ID if after else -1
    except ValueError:
        raise InputError(f"invalid {what} format, use the cursor returned by the API or RFC3339") from None


def event_json(
    e: dict[str, Any], ids: dict[int, str], labels: dict[int, str], vals: dict[int, str | None]
) -> dict[str, Any]:
    node = e["node"]
    out: dict[str, Any] = {
        "id": e["id"], "eventType": event_type(e["kind"], e["step"], e["msg_type"]), "kind": e["kind"],
        "timestamp": format_ns(e["ts"]), "nodeId": ids.get(node, ""), "node": labels.get(node, ""),
        "validatorAddress": vals.get(node) or "", "height": e["height"], "round": e["round"],
    }  # fmt: skip
    for col in ("step", "msg_type", "vote_type", "validator", "validator_index", "part_index", "peer", "block_hash"):
        if e[col] is not None:
            out[_camel(col)] = e[col]
    if e["kind"] == "step":
        out.update(currentHeight=e["height"], currentRound=e["round"], currentStep=e["step"])
    if e["msg_type"] == "vote":
        out["vote"] = {"type": e["vote_type"], "height": e["height"], "round": e["round"],
                       "validatorIndex": e["validator_index"], "validatorAddress": e["validator"] or "",
                       "timestamp": format_ns(e["signer_ts"]) if e["signer_ts"] is not None else None}  # fmt: skip
    if e["peer"]:
        out["recipientPeerId" if e["kind"] == "p2p_send" else "sourcePeerId"] = e["peer"]
    if e["kind"] == "proposer_turn" and e["extra"]:
        out["isOurTurn"] = bool(orjson.loads(e["extra"]).get("our_turn"))
    if e["extra"]:
        out["extra"] = orjson.loads(e["extra"])
    return out
