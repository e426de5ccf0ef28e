"""The replay node's RPC methods (HTTP GET, JSON-RPC POST and over the websocket): ``status``, ``validators``,
``block``, ``commit``, ``consensus_state``, ``net_info``, ``health``. Each takes the call's params (strings from a
URL, or JSON values) and returns the ``result`` object, or raises :class:`RPCError` with CometBFT's code and
text. Heights the replay has not reached yet are refused as a real node refuses heights above its own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bftscope.families.cometbft.replay.cmttime import ZERO_TIME, format_ns
from bftscope.families.cometbft.replay.frames import block_id_json, block_json, commit_json, header_json, vote_string
from bftscope.families.cometbft.replay.player import Player

__all__ = ["INTERNAL", "INVALID_PARAMS", "METHODS", "METHOD_NOT_FOUND", "RPCError", "call", "error_body"]

INVALID_PARAMS, INTERNAL, METHOD_NOT_FOUND = -32602, -32603, -32601
_MESSAGES = {INVALID_PARAMS: "Invalid params", INTERNAL: "Internal error", METHOD_NOT_FOUND: "Method not found"}
DEFAULT_PER_PAGE, MAX_PER_PAGE = 30, 100
_VERSION = "0.34.0"


class RPCError(Exception):
    def __init__(self, code: int, data: str) -> None:
        super().__init__(data)
        self.code = code
        self.message = _MESSAGES.get(code, "Internal error")
        self.data = data


def error_body(id_: Any, code: int, message: str, data: str) -> dict[str, Any]:
    """A JSON-RPC error response."""
    return {"jsonrpc": "2.0", "id": id_, "error": {"code": code, "message": message, "data": data}}


def _int_param(params: dict[str, Any], name: str) -> int | None:
    value = params.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise RPCError(INVALID_PARAMS, f"error converting http params to arguments: {name}: not an integer")
    if isinstance(value, int):
        return value
    text = str(value).strip().strip('"')
    try:
        return int(text)
    except ValueError:
        raise RPCError(
            INVALID_PARAMS, f"error converting http params to arguments: {name}: invalid integer {text[:40]!r}"
        ) from None


def _height(p: Player, params: dict[str, Any], *, latest: int) -> int:
    """CometBFT's ``getHeight``: the requested height within [lowest, latest], latest when none is given."""
    h = _int_param(params, "height")
    first = p.tl.first_height or p.tl.initial_height
    if h is None:
        if latest < first:
            raise RPCError(INTERNAL, f"height {first} is not available, lowest height is {first}")
        return latest
    if h <= 0:
        raise RPCError(INTERNAL, f"height must be greater than 0, but got {h}")
    if h > latest:
        raise RPCError(INTERNAL, f"height {h} must be less than or equal to the current blockchain height {latest}")
    if h < first:
        raise RPCError(INTERNAL, f"height {h} is not available, lowest height is {first}")
    return h


def _pub_key(p: Player, address: str) -> dict[str, str]:
    for v in p.tl.validators:
        if v.address == address:
            return {"type": v.pub_key_type, "value": v.pub_key_value}
    return {"type": "tendermint/PubKeyEd25519", "value": ""}


def status(p: Player, params: dict[str, Any]) -> dict[str, Any]:
    tl = p.tl
    latest = p.block(p.latest_height)
    first = p.block(tl.first_height) if tl.first_height is not None else None
    own = tl.own_address or ""
    power = next((v.power for v in tl.validators if v.address == own), 0)
    return {
        "node_info": {
            "protocol_version": {"p2p": "8", "block": "11", "app": "0"},
            "id": tl.p2p_id or "",
            "listen_addr": "tcp://0.0.0.0:26656",
            "network": tl.chain_id,
            "version": _VERSION,
            "channels": "40202122233038606100",
            "moniker": tl.moniker or tl.node,
            "other": {"tx_index": "off", "rpc_address": "tcp://0.0.0.0:26657"},
        },
        "sync_info": {
            "latest_block_hash": latest.block_id.hash if latest else "",
            "latest_app_hash": "",
            "latest_block_height": str(p.latest_height),
            "latest_block_time": format_ns(latest.time_ns) if latest else ZERO_TIME,
            "earliest_block_hash": first.block_id.hash if first and latest else "",
            "earliest_app_hash": "",
            "earliest_block_height": str(first.height if first and latest else 0),
            "earliest_block_time": format_ns(first.time_ns) if first and latest else ZERO_TIME,
            "catching_up": False,
        },
        "validator_info": {"address": own, "pub_key": _pub_key(p, own), "voting_power": str(power)},
    }


def validators(p: Player, params: dict[str, Any]) -> dict[str, Any]:
    h = _height(p, params, latest=p.latest_height + 1)  # the next height's set is known, as on a real node
    per_page = _int_param(params, "per_page")
    per_page = DEFAULT_PER_PAGE if per_page is None or per_page < 1 else min(per_page, MAX_PER_PAGE)
    page = _int_param(params, "page")
    page = 1 if page is None else page
    members = p.set_at(h).validators
    pages = max(1, (len(members) + per_page - 1) // per_page)
    if page < 1 or page > pages:
        raise RPCError(INTERNAL, f"page should be within [1, {pages}] range, given {page}")
    chosen = members[(page - 1) * per_page : page * per_page]
    return {
        "block_height": str(h),
        "validators": [
            {
                "address": v.address,
                "pub_key": _pub_key(p, v.address),
                "voting_power": str(v.power),
                "proposer_priority": str(v.proposer_priority or 0),
            }
            for v in chosen
        ],
        "count": str(len(chosen)),
        "total": str(len(members)),
    }


def block(p: Player, params: dict[str, Any]) -> dict[str, Any]:
    h = _height(p, params, latest=p.latest_height)
    b = p.block(h)
    assert b is not None  # every height from the first to the latest has a block
    return {"block_id": block_id_json(b.block_id), "block": block_json(p.tl, b)}


def commit(p: Player, params: dict[str, Any]) -> dict[str, Any]:
    h = _height(p, params, latest=p.latest_height)
    b = p.block(h)
    assert b is not None
    return {
        "signed_header": {"header": header_json(p.tl, b), "commit": commit_json(p.commit(h))},
        "canonical": h < p.latest_height,  # the latest commit is the node's own "seen" commit
    }


def _bit_array(votes: dict[str, Any], p: Player) -> str:
    bits = "".join("x" if v.address in votes else "_" for v in p.tl.validators)
    power = sum(v.power for v in p.tl.validators if v.address in votes)
    total = sum(v.power for v in p.tl.validators)
    return f"BA{{{len(bits)}:{bits}}} {power}/{total} = {power / total if total else 0:.2f}"


def consensus_state(p: Player, params: dict[str, Any]) -> dict[str, Any]:
    address, index = p.proposer(p.height, p.round)
    step = ["RoundStepNewHeight", "RoundStepNewRound", "RoundStepPropose", "RoundStepPrevote", "RoundStepPrevoteWait",
            "RoundStepPrecommit", "RoundStepPrecommitWait", "RoundStepCommit"].index(p.step) + 1  # fmt: skip
    rounds = []
    for r in sorted(set(p.votes) | {p.round}):
        rv = p.votes.get(r)
        pre, com = (rv.prevotes, rv.precommits) if rv else ({}, {})
        rounds.append({
            "round": r,
            "prevotes": [vote_string(pre[v.address]) if v.address in pre else "nil-Vote" for v in p.tl.validators],
            "prevotes_bit_array": _bit_array(pre, p),
            "precommits": [vote_string(com[v.address]) if v.address in com else "nil-Vote" for v in p.tl.validators],
            "precommits_bit_array": _bit_array(com, p),
        })  # fmt: skip
    return {
        "round_state": {
            "height/round/step": f"{p.height}/{p.round}/{step}",
            "start_time": format_ns(p.round_start_ns),
            "proposal_block_hash": p.proposal_hash,
            "locked_block_hash": "",
            "valid_block_hash": "",
            "height_vote_set": rounds,
            "proposer": {"address": address, "index": index},
        }
    }


def net_info(p: Player, params: dict[str, Any]) -> dict[str, Any]:
    peers = [{"node_info": {"id": peer, "moniker": "", "network": p.tl.chain_id}, "is_outbound": False,
              "remote_ip": ""} for peer in p.tl.peers]  # fmt: skip
    return {"listening": True, "listeners": ["Listener(@)"], "n_peers": str(len(peers)), "peers": peers}


def health(p: Player, params: dict[str, Any]) -> dict[str, Any]:
    return {}


METHODS: dict[str, Callable[[Player, dict[str, Any]], dict[str, Any]]] = {
    "status": status, "validators": validators, "block": block, "commit": commit,
    "consensus_state": consensus_state, "net_info": net_info, "health": health,
}  # fmt: skip


def call(p: Player, method: str, params: dict[str, Any], failing: set[str]) -> dict[str, Any]:
    fn = METHODS.get(method)
    if fn is None:
        raise RPCError(METHOD_NOT_FOUND, "")
    if method in failing:
        raise RPCError(INTERNAL, f"replay: {method} fails on purpose (fault injection)")
    return fn(p, params)
