"""CometBFT RPC websocket frames → event rows (the docs/live.md contract table).

A subscription delivers JSON-RPC 2.0 messages: an ack (``result: {}``) per ``subscribe``, an error object when
the node refuses one, and then one event frame per consensus event, ``result.data = {type, value}`` (shapes in
§E of live-sources.md). Each event maps to rows of :data:`bftscope.model.ROW_SCHEMA`, as mappings column →
value, with ``ts`` the monitor's receipt time: the kinds are those of log and WAL files, so every analytic reads
a live run unchanged. Anything else (acks, errors, event types we do not map, frames that are not JSON-RPC or
lack a field) is counted in :attr:`RpcDecoder.report` under a short reason and never raised.

:func:`block_rows` and :func:`commit_rows` are shared with the follower's backfill, which reads the same
objects from ``/block`` and ``/commit``. CometBFT encodes int64 as JSON strings and int32 as numbers
(§E.2); both are accepted everywhere.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from typing import Any

import msgspec

from bftscope.families.cometbft import kinds
from bftscope.ingest.parsereport import ParseReport
from bftscope.sources.base import Frame
from bftscope.timeutil import parse_rfc3339_ns

__all__ = ["EVENT_KINDS", "Row", "RpcDecoder", "block_rows", "commit_rows"]

Row = dict[str, Any]

# The RPC events the follower subscribes to, in the order it subscribes (docs/live.md).
EVENT_KINDS = ("Vote", "NewRound", "NewRoundStep", "NewBlock", "CompleteProposal", "ValidatorSetUpdates")

_VOTE_TYPES = {1: "prevote", 2: "precommit"}
_FLAGS = {1, 2, 3}  # BlockIDFlag: absent, commit, nil
_RPC_EXTRA = '{"source":"rpc"}'
_MAX_ERRORS = 20  # error messages kept for the status (their count is in the report)


class Malformed(ValueError):
    """A frame of a known event type without a field the contract needs."""


def _int(value: Any) -> int:
    if isinstance(value, bool):
        raise Malformed("a boolean where a number belongs")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.lstrip("-").isdigit() and len(value) <= 20:
        return int(value)
    raise Malformed(f"not an integer: {value!r}")


def _hex(value: Any) -> str | None:
    """An address or hash as upper-case hex; an empty one is ``None`` (a nil vote, an absent signature)."""
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > 128:
        raise Malformed(f"not a hex identifier: {value!r}")
    return value.upper()


def _time_ns(value: Any) -> int | None:
    """RFC 3339 → Unix ns; Go's zero time (``0001-01-01…``, an absent signature) and nothing → ``None``."""
    if not isinstance(value, str) or not value or value.startswith("0001-01-01"):
        return None
    try:
        return parse_rfc3339_ns(value)
    except ValueError as exc:
        raise Malformed(f"not a timestamp: {value!r}") from exc


def _obj(value: Any) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise Malformed(f"not an object: {type(value).__name__}")
    return value


def _snake_step(step: Any) -> str:
    if not isinstance(step, str) or not step.startswith("RoundStep") or len(step) > 40:
        raise Malformed(f"not a round step: {step!r}")
    name = step[len("RoundStep") :]
    out = "".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_")
    if out not in kinds.STEPS:
        raise Malformed(f"unknown round step {step!r}")
    return out


def commit_rows(commit: Any, ts: int, source: str) -> list[Row]:
    """One ``commit_sig`` row per signature of a commit (``/commit`` or a block's ``last_commit``).

    ``validator_index`` is the position in the signatures array (the order of that height's validator set).
    A signature that is not an object or has no known flag is left out (the caller counts rows, not these).
    """
    commit = _obj(commit)
    height, rnd = _int(commit.get("height")), _int(commit.get("round", 0))
    committed = _hex(_obj(commit.get("block_id") or {}).get("hash"))
    sigs = commit.get("signatures") or []
    if not isinstance(sigs, list):
        raise Malformed("signatures is not a list")
    rows: list[Row] = []
    for index, sig in enumerate(sigs):
        if not isinstance(sig, Mapping) or sig.get("block_id_flag") not in _FLAGS:
            continue
        flag = int(sig["block_id_flag"])
        rows.append({
            "ts": ts, "kind": kinds.COMMIT_SIG, "height": height, "round": rnd, "vote_type": "precommit",
            "validator": _hex(sig.get("validator_address")), "validator_index": index,
            "block_hash": committed if flag == 2 else None, "signer_ts": _time_ns(sig.get("timestamp")),
            "extra": f'{{"flag":{flag},"source":"{source}"}}',
        })  # fmt: skip
    return rows


def block_rows(value: Any, ts: int, source: str) -> list[Row]:
    """A ``NewBlock`` event value or a ``/block`` result → ``block_committed`` (``extra.source`` = ``source``:
    ``rpc`` from the stream, ``backfill`` from ``/block``) and its last commit's ``commit_sig`` rows.

    v0.34/v0.37 NewBlock events carry no ``block_id``: the row's hash is then NULL (unknown, not guessed).
    """
    value = _obj(value)
    block = _obj(value.get("block"))
    header = _obj(block.get("header"))
    height = _int(header.get("height"))
    block_id = value.get("block_id")
    txs = _obj(block.get("data") or {}).get("txs") or []
    extra = {"num_txs": len(txs) if isinstance(txs, list) else 0, "source": source}
    rows: list[Row] = [{
        "ts": ts, "kind": kinds.BLOCK_COMMITTED, "height": height,
        "block_hash": _hex(_obj(block_id).get("hash")) if block_id else None,
        "validator": _hex(header.get("proposer_address")), "signer_ts": _time_ns(header.get("time")),
        "extra": json.dumps(extra, separators=(",", ":")),
    }]  # fmt: skip
    last_commit = block.get("last_commit")
    if isinstance(last_commit, Mapping) and _int(last_commit.get("height", 0)) > 0:
        rows.extend(commit_rows(last_commit, ts, "block"))
    return rows


class RpcDecoder:
    """Stateful across frames only for ``ValidatorSetUpdates`` heights (the last ``NewBlock`` seen + 2).

    ``clock_ns`` gives the receipt time (injectable: tests pin it). :attr:`errors` keeps the messages of the
    JSON-RPC errors received (a refused subscription, an overloaded node), newest last.
    """

    def __init__(self, *, clock_ns: Callable[[], int] = time.time_ns, last_block_height: int | None = None) -> None:
        self.report = ParseReport()
        self.errors: list[str] = []
        self.rpc_errors = 0
        self.last_block_height = last_block_height
        # Heights where a NewBlock's ABCI validator updates take effect (H+2): the set to fetch there, even when
        # the node refused the ValidatorSetUpdates subscription. The follower takes them out.
        self.set_changes: list[int] = []
        self._clock_ns = clock_ns
        self._decode = msgspec.json.Decoder()
        self._handlers: dict[str, Callable[[Any, int], list[Row]]] = {
            "tendermint/event/Vote": self._vote,
            "tendermint/event/NewRound": self._new_round,
            "tendermint/event/RoundState": self._round_state,
            "tendermint/event/CompleteProposal": self._complete_proposal,
            "tendermint/event/NewBlock": self._new_block,
            "tendermint/event/ValidatorSetUpdates": self._validator_updates,
        }

    def feed(self, frame: Frame) -> list[Row]:
        self.report.lines += 1
        self.report.bytes_read += len(frame.data)
        try:
            doc = self._decode.decode(frame.data)
        except msgspec.DecodeError:
            self.report.skip("not JSON", f"frame {self.report.lines}", frame.data)
            return []
        if not isinstance(doc, dict) or doc.get("jsonrpc") != "2.0":
            self.report.skip("not a JSON-RPC message", f"frame {self.report.lines}", frame.data)
            return []
        if "error" in doc:
            return self._error(doc["error"], frame)
        result = doc.get("result")
        if result == {}:
            self.report.skip("subscribe ack", f"frame {self.report.lines}")
            return []
        data = result.get("data") if isinstance(result, dict) else None
        if not isinstance(data, dict):
            self.report.skip("not an event", f"frame {self.report.lines}", frame.data)
            return []
        etype = data.get("type")
        handler = self._handlers.get(etype) if isinstance(etype, str) else None
        if handler is None:
            self.report.skip(f"unknown event {str(etype)[:60]}", f"frame {self.report.lines}")
            return []
        try:
            rows = handler(data.get("value"), self._clock_ns())
        except Malformed as exc:
            name = str(etype).rsplit("/", 1)[-1]
            self.report.skip(f"malformed {name}", f"frame {self.report.lines}: {exc}", frame.data)
            return []
        self.report.events += len(rows)
        return rows

    def finish(self) -> list[Row]:
        return []

    def _error(self, error: Any, frame: Frame) -> list[Row]:
        err = error if isinstance(error, dict) else {}
        code = err.get("code")
        message = f"{err.get('message', '')}: {err.get('data', '')}"[:300]
        self.report.skip(f"rpc error {code}", f"frame {self.report.lines}", frame.data)
        self.errors = [*self.errors[-(_MAX_ERRORS - 1) :], message]
        self.rpc_errors += 1
        return []

    def _vote(self, value: Any, ts: int) -> list[Row]:
        vote = _obj(_obj(value).get("Vote"))
        vtype = _VOTE_TYPES.get(vote.get("type"))  # type: ignore[arg-type]
        if vtype is None:
            raise Malformed(f"vote type {vote.get('type')!r}")
        validator = _hex(vote.get("validator_address"))
        if validator is None:
            raise Malformed("a vote without a validator address")
        return [{
            "ts": ts, "kind": kinds.VOTE_ADDED, "height": _int(vote.get("height")), "round": _int(vote.get("round")),
            "vote_type": vtype, "msg_type": "vote", "validator": validator,
            "validator_index": _int(vote.get("validator_index")),
            "block_hash": _hex(_obj(vote.get("block_id") or {}).get("hash")),
            "signer_ts": _time_ns(vote.get("timestamp")), "extra": _RPC_EXTRA,
        }]  # fmt: skip

    def _new_round(self, value: Any, ts: int) -> list[Row]:
        value = _obj(value)
        proposer = value.get("proposer")
        proposer = proposer if isinstance(proposer, Mapping) else {}
        index = proposer.get("index")
        return [{
            "ts": ts, "kind": kinds.STEP, "step": "new_round", "height": _int(value.get("height")),
            "round": _int(value.get("round")), "validator": _hex(proposer.get("address")),
            "validator_index": None if index is None else _int(index),
        }]  # fmt: skip

    def _round_state(self, value: Any, ts: int) -> list[Row]:
        value = _obj(value)
        step = _snake_step(value.get("step"))
        height, rnd = _int(value.get("height")), _int(value.get("round"))
        if step == "new_round":
            self.report.skip("step new_round (carried by NewRound)", f"frame {self.report.lines}")
            return []
        return [{"ts": ts, "kind": kinds.STEP, "step": step, "height": height, "round": rnd}]

    def _complete_proposal(self, value: Any, ts: int) -> list[Row]:
        value = _obj(value)
        return [{
            "ts": ts, "kind": kinds.BLOCK_COMPLETE, "height": _int(value.get("height")),
            "round": _int(value.get("round")), "block_hash": _hex(_obj(value.get("block_id") or {}).get("hash")),
        }]  # fmt: skip

    def _new_block(self, value: Any, ts: int) -> list[Row]:
        rows = block_rows(value, ts, "rpc")
        height = self.last_block_height = rows[0]["height"]
        for key in ("result_finalize_block", "result_end_block"):
            results = value.get(key) if isinstance(value, Mapping) else None
            if isinstance(results, Mapping) and results.get("validator_updates"):
                self.set_changes.append(height + 2)
        return rows

    def _validator_updates(self, value: Any, ts: int) -> list[Row]:
        updates = _obj(value).get("validator_updates") or []
        if not isinstance(updates, list):
            raise Malformed("validator_updates is not a list")
        height = None if self.last_block_height is None else self.last_block_height + 2
        rows: list[Row] = []
        for update in updates:
            update = _obj(update)
            power, priority = _int(update.get("voting_power")), _int(update.get("proposer_priority", 0))
            extra = f'{{"power":{power},"proposer_priority":{priority}}}'
            row = {"ts": ts, "kind": kinds.VALIDATOR_UPDATE, "height": height, "validator": _hex(update.get("address"))}
            rows.append({**row, "extra": extra})
        return rows
