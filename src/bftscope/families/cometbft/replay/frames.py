"""Timeline values in CometBFT's JSON (cmtjson, live-sources.md §E): int64 as strings, int32 as numbers,
hashes and addresses upper hex, signatures base64, times RFC 3339 nano.

The shapes are those of the recording's version (Tendermint v0.34): a ``NewBlock`` carries
``result_begin_block``/``result_end_block``, a ``Vote`` has no extension fields. Header hashes the recording does
not hold (app, results, validators, consensus) are empty strings; the data hash is that of an empty block.
"""

from __future__ import annotations

import base64
from typing import Any

from bftscope.families.cometbft.replay.cmttime import format_ns
from bftscope.families.cometbft.replay.model import Block, BlockId, Commit, CommitSig, Event, Vote
from bftscope.families.cometbft.replay.timeline import Timeline

__all__ = ["block_json", "commit_json", "event_data", "header_json", "vote_json", "vote_string"]

_EMPTY_DATA_HASH = "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855"  # sha256 of nothing
_BLOCK_PROTOCOL = "11"


def b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode("ascii")


def block_id_json(bid: BlockId | None) -> dict[str, Any]:
    if bid is None:
        return {"hash": "", "parts": {"total": 0, "hash": ""}}
    return {"hash": bid.hash, "parts": {"total": bid.parts_total, "hash": bid.parts_hash}}


def vote_json(v: Vote) -> dict[str, Any]:
    return {
        "type": v.type,
        "height": str(v.height),
        "round": v.round,
        "block_id": block_id_json(v.block_id),
        "timestamp": format_ns(v.timestamp_ns),
        "validator_address": v.validator,
        "validator_index": v.index,
        "signature": b64(v.signature),
    }


def vote_string(v: Vote) -> str:
    """A vote as ``/consensus_state`` lists it (CometBFT's ``Vote.String``)."""
    kind = "SIGNED_MSG_TYPE_PREVOTE(Prevote)" if v.type == 1 else "SIGNED_MSG_TYPE_PRECOMMIT(Precommit)"
    return (
        f"Vote{{{v.index}:{v.validator[:12]} {v.height}/{v.round:02d}/{kind} {v.block_id.hash[:12]} "
        f"{v.signature[:6].hex().upper()} @ {format_ns(v.timestamp_ns)}}}"
    )


def _sig_json(s: CommitSig) -> dict[str, Any]:
    return {
        "block_id_flag": s.flag,
        "validator_address": s.validator,
        "timestamp": format_ns(s.timestamp_ns),
        "signature": b64(s.signature),
    }


def commit_json(c: Commit | None) -> dict[str, Any]:
    if c is None:  # the first block's last commit is empty
        return {"height": "0", "round": 0, "block_id": block_id_json(None), "signatures": []}
    return {
        "height": str(c.height),
        "round": c.round,
        "block_id": block_id_json(c.block_id),
        "signatures": [_sig_json(s) for s in c.sigs],
    }


def header_json(tl: Timeline, b: Block) -> dict[str, Any]:
    return {
        "version": {"block": _BLOCK_PROTOCOL},  # app version 0 is omitted (omitempty), as in v0.34 blocks
        "chain_id": tl.chain_id,
        "height": str(b.height),
        "time": format_ns(b.time_ns),
        "last_block_id": block_id_json(b.last_block_id),
        "last_commit_hash": "",
        "data_hash": _EMPTY_DATA_HASH,
        "validators_hash": "",
        "next_validators_hash": "",
        "consensus_hash": "",
        "app_hash": "",
        "last_results_hash": "",
        "evidence_hash": "",
        "proposer_address": b.proposer,
    }


def block_json(tl: Timeline, b: Block) -> dict[str, Any]:
    return {
        "header": header_json(tl, b),
        "data": {"txs": []},
        "evidence": {"evidence": []},
        "last_commit": commit_json(b.last_commit),
    }


def event_data(tl: Timeline, e: Event, block: Block | None = None) -> dict[str, Any]:
    """``result.data`` of the event frame: ``{"type": "tendermint/event/<Kind>", "value": …}`` (``block``: that of a
    NewBlock, when not the timeline's block at the event's height)."""
    head: dict[str, Any] = {"height": str(e.height), "round": e.round, "step": e.step}
    if e.kind == "NewRound":
        address, index = e.proposer or ("", -1)
        value: dict[str, Any] = {**head, "proposer": {"address": address, "index": index}}
        kind = "NewRound"
    elif e.kind == "NewRoundStep":
        value, kind = head, "RoundState"
    elif e.kind == "CompleteProposal":
        value, kind = {**head, "block_id": block_id_json(e.block_id)}, "CompleteProposal"
    elif e.kind == "Vote":
        assert e.vote is not None
        value, kind = {"Vote": vote_json(e.vote)}, "Vote"
    else:  # NewBlock
        b = block if block is not None else tl.blocks[e.height]
        value = {
            "block": block_json(tl, b),
            "result_begin_block": {"events": []},
            "result_end_block": {"validator_updates": [], "consensus_param_updates": None, "events": []},
        }
        kind = "NewBlock"
    return {"type": f"tendermint/event/{kind}", "value": value}
