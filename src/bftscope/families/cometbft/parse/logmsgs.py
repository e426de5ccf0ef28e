"""CometBFT log messages → event rows, for JSON and plain-text logs alike.

A log line, whichever its framing, becomes a :class:`LogLine` (its message plus the key/values
we read); :class:`MessageMapper` turns it into one row of the events table (see
:mod:`bftscope.model` for the column order, :mod:`bftscope.families.cometbft.kinds` for the kinds).

Lookup is by exact message, then case-insensitively, so the lower-case messages of Tendermint
0.34–0.38 (``entering new round`` …) and the capitalised ones of CometBFT 1.x both match. Lines we
cannot use raise :class:`Skip` with the reason the report will count.

The expensive fields (protobuf ``msgBytes``, ``Vote{…}`` strings) are decoded once per distinct
value: a vote is sent to every peer and received from several, so the same bytes recur many
times in one file and the caches below turn most decodes into a dict lookup.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from typing import Any

import msgspec
import xxhash

from bftscope.families.cometbft import kinds as K
from bftscope.families.cometbft.parse.identity import node_info_fields
from bftscope.families.cometbft.parse.logline import HotLine, LogLine
from bftscope.families.cometbft.parse.proto import ConsensusMsg, ProtoError, decode_consensus_message, step_name
from bftscope.families.cometbft.parse.receive import parse_receive_msg
from bftscope.families.cometbft.parse.strings import (
    parse_block_summary,
    parse_hrs,
    parse_peer_src,
    parse_proposal,
    parse_vote,
    parse_voteset_hr,
    vote_type_name,
)
from bftscope.model import Row
from bftscope.timeutil import parse_go_duration_ns, parse_rfc3339_ns

__all__ = ["HotLine", "LogLine", "MessageMapper", "Skip"]


class Skip(Exception):
    """This line yields no event; ``reason`` is what the ingest report counts."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _i(v: Any) -> int | None:
    if v is None:
        return None
    if type(v) is int:
        return v
    try:
        return int(v)
    except (TypeError, ValueError):
        raise Skip("malformed field") from None


_enc = msgspec.json.Encoder()


def _extra(d: dict[str, Any]) -> str:
    return _enc.encode(d).decode()


# Consensus channels and the message types each may carry (CometBFT refuses any other pairing).
_CHANNEL_TYPES: dict[int, frozenset[str]] = {
    0x20: frozenset({"new_round_step", "new_valid_block", "has_vote", "vote_set_maj23", "proposal_pol",
                     "has_proposal_block_part"}),
    0x21: frozenset({"proposal", "block_part"}),
    0x22: frozenset({"vote"}),
    0x23: frozenset({"vote_set_bits"}),
}  # fmt: skip

_I64 = 1 << 63
_U64 = 1 << 64

# Entering-step messages → step name. "wait" steps are matched exactly, never by substring.
_STEP_MSGS = {
    "entering propose step": "propose",
    "entering prevote step": "prevote",
    "entering prevote wait step": "prevote_wait",
    "entering precommit step": "precommit",
    "entering precommit wait step": "precommit_wait",
    "entering commit step": "commit",
    "entering new round": "new_round",
}

_CACHE_LIMIT = 200_000

Handler = Callable[[LogLine, int | str, int], Row]


class MessageMapper:
    """Maps :class:`LogLine` values to rows. One per parsed file range (it holds decode caches).

    ``received_b64``: whether ``Received bytes`` carries base64 (JSON logs) rather than hex (text).
    """

    def __init__(self, *, received_b64: bool) -> None:
        self.received_b64 = received_b64
        self._p2p_cache: dict[str, tuple[ConsensusMsg, int, int]] = {}
        self._vote_cache: dict[str, Any] = {}
        self._peer_cache: dict[str, str] = {}
        self._recv_cache: dict[str, tuple[Any, ...]] = {}
        self._src_cache: dict[str, str | None] = {}
        self._packet_extra: dict[tuple[Any, Any], str] = {}
        # Repeats of the busiest lines, for the JSON parser's hot loop (families/cometbft/parse/jsonlog.py): key →
        # ``ref`` of a row of the current SharedRowBatch whose shared columns the line would repeat.
        # p2p lines are keyed by msgBytes, Receive by its msg text, Read PacketMsg by (channel_id,
        # eof, size). A key is only ever added after its handler succeeded, and the p2p and Receive
        # maps are emptied together with the decode caches behind them: a line is taken as a repeat
        # only where its handler would have answered from those caches, with the same values.
        self.p2p_refs: dict[str, int] = {}
        self.recv_refs: dict[str, int] = {}
        self.packet_refs: dict[tuple[Any, Any, int | None], int] = {}
        h: dict[str, Handler] = {
            "Send": self._send,
            "TrySend": self._send,
            "Received bytes": self._received_bytes,
            "Read PacketMsg": self._packet,
            "Receive": self._receive,
            "Adding vote": self._adding_vote,
            "Added vote to prevote": self._added_vote_str,
            "Added vote to precommit": self._added_precommit,
            "Added vote to last precommits": self._added_last,
            "Sending vote message": self._sending_vote,
            "Signed and pushed vote": self._signed_vote,
            "Receive block part": self._receive_block_part,
            "Received proposal": self._received_proposal,
            "Signed proposal": self._signed_proposal,
            "Received complete proposal block": self._complete_block,
            "Propose step; our turn to propose": self._our_turn,
            "Propose step; not our turn to propose": self._not_our_turn,
            "Scheduled timeout": self._scheduled_timeout,
            "Timed out": self._timed_out,
            "Precommit step: +2/3 prevoted proposal block; locking": self._locking,
            "Updating valid block because of POL": self._valid_block,
            "Finalizing commit of block": self._finalizing,
            "Committed block": self._committed_block,
            "Executed block": self._executed_block,
            "Finalized block": self._executed_block,
            "Committed state": self._committed_state,
            "This node is a validator": self._node_validator,
            "P2P Node ID": self._node_id,
            "Started node": self._started_node,
            "Version info": self._version_info,
        }
        for text, step in _STEP_MSGS.items():
            h[text[0].upper() + text[1:]] = self._make_step(step)
            h[text[0].upper() + text[1:] + " with invalid args"] = self._make_step_invalid(step)
        self._exact = h
        self._lower = {k.lower(): v for k, v in h.items()}

    @property
    def exact_handlers(self) -> dict[str, Handler]:
        """Handlers by exact message (the hot path; :meth:`handler` also matches other cases)."""
        return self._exact

    def handler(self, msg: str) -> Handler | None:
        return self._exact.get(msg) or self._lower.get(msg.lower())

    def new_batch(self) -> None:
        """Forget the repeat keys (their refs point into the batch just flushed)."""
        self.p2p_refs.clear()
        self.recv_refs.clear()
        self.packet_refs.clear()

    @property
    def peer_ids(self) -> dict[str, str]:
        """Memo of :meth:`peer_id` for str values (read-only use: a miss must call :meth:`peer_id`)."""
        return self._peer_cache

    @property
    def src_peers(self) -> dict[str, str | None]:
        """Memo of :meth:`src_peer` for str values (read-only use: a miss must call :meth:`src_peer`)."""
        return self._src_cache

    # --- p2p transport -------------------------------------------------------------------

    def peer_id(self, peer: Any) -> str | None:
        """The lower-case p2p id of a ``peer`` value (``id@host:port``); None if it is not text."""
        if not isinstance(peer, str):
            return None
        pid = self._peer_cache.get(peer)
        if pid is None:
            pid = peer.split("@", 1)[0].lower()
            if len(self._peer_cache) > 10_000:
                self._peer_cache.clear()
            self._peer_cache[peer] = pid
        return pid

    def _decode_p2p(self, text: Any, raw_channel: Any, hex_encoded: bool) -> tuple[ConsensusMsg, int, int]:
        hit = self._p2p_cache.get(text) if isinstance(text, str) else None
        if hit is not None:
            return hit
        if not isinstance(text, str):
            raise Skip("missing msgBytes")
        channel = _i(raw_channel)
        if channel is None:
            raise Skip("missing channel")
        allowed = _CHANNEL_TYPES.get(channel)
        if allowed is None:
            raise Skip("non-consensus channel")
        try:
            raw = bytes.fromhex(text) if hex_encoded else base64.b64decode(text, validate=True)
        except (ValueError, binascii.Error):
            raise Skip("undecodable msgBytes") from None
        try:
            msg = decode_consensus_message(raw)
        except ProtoError:
            raise Skip("undecodable msgBytes") from None
        if msg.msg_type not in allowed:
            raise Skip("message type does not match channel")
        key = xxhash.xxh3_64_intdigest(raw)
        if key >= _I64:
            key -= _U64
        hit = (msg, key, len(raw))
        if len(self._p2p_cache) >= _CACHE_LIMIT:
            self._p2p_cache.clear()
            self.p2p_refs.clear()
        self._p2p_cache[text] = hit
        return hit

    def _p2p_row(
        self, kind: str, line: LogLine | HotLine, ts: int | str, seq: int, hit: tuple[ConsensusMsg, int, int]
    ) -> Row:
        m, key, size = hit
        return (ts, kind, m.height, m.round, m.step, m.vote_type, m.msg_type, m.validator, m.validator_index,
                m.part_index, self.peer_id(line.peer), m.block_hash, m.signer_ts, key, size, seq, m.extra)  # fmt: skip

    def _send(self, line: LogLine | HotLine, ts: int | str, seq: int) -> Row:
        hit = self._decode_p2p(line.msgBytes, line.channel, True)
        return self._p2p_row(K.P2P_SEND, line, ts, seq, hit)

    def _received_bytes(self, line: LogLine | HotLine, ts: int | str, seq: int) -> Row:
        hit = self._decode_p2p(line.msgBytes, line.chID, not self.received_b64)
        return self._p2p_row(K.P2P_RECV, line, ts, seq, hit)

    def _packet(self, line: LogLine | HotLine, ts: int | str, seq: int) -> Row:
        pkt = line.packet
        extra = None
        size = None
        if pkt is not None:
            data = pkt.data
            size = len(data) * 3 // 4 - data.count("=", -2) if isinstance(data, str) else None
            key = (pkt.channel_id, pkt.eof)
            extra = self._packet_extra.get(key)
            if extra is None:
                extra = self._packet_extra[key] = _extra({"channel": pkt.channel_id, "eof": bool(pkt.eof)})
        return (ts, K.P2P_PACKET, None, None, None, None, None, None, None, None, self.peer_id(line.peer), None,
                None, None, size, seq, extra)  # fmt: skip

    # --- consensus reactor / state ---------------------------------------------------------

    def _receive(self, line: LogLine | HotLine, ts: int | str, seq: int) -> Row:
        text = line.msg_
        if not isinstance(text, str):
            raise Skip("missing msg")
        parsed = self._recv_cache.get(text)
        if parsed is None:
            parsed = parse_receive_msg(text)
            if parsed is None:
                raise Skip("unparsable consensus message")
            if len(self._recv_cache) >= _CACHE_LIMIT:
                self._recv_cache.clear()
                self.recv_refs.clear()
            self._recv_cache[text] = parsed
        msg_type, height, rnd, vtype, vidx, pidx, signer_ts, extra = parsed
        peer = self.src_peer(line.src)
        return (ts, K.MSG_RECEIVED, height, rnd, None, vtype, msg_type, None, vidx, pidx, peer, None, signer_ts,
                None, None, seq, extra)  # fmt: skip

    def src_peer(self, src: Any) -> str | None:
        """The p2p id in a ``Peer{MConn{…} id in|out}`` value; None if there is none."""
        if not isinstance(src, str):
            return None
        try:
            return self._src_cache[src]
        except KeyError:
            if len(self._src_cache) > 10_000:
                self._src_cache.clear()
            peer = self._src_cache[src] = parse_peer_src(src)
            return peer

    def _vote_text(self, text: Any) -> Any:
        if not isinstance(text, str):
            raise Skip("missing vote")
        v = self._vote_cache.get(text)
        if v is None:
            v = parse_vote(text)
            if v is None:
                raise Skip("unparsable vote")
            if len(self._vote_cache) >= _CACHE_LIMIT:
                self._vote_cache.clear()
            self._vote_cache[text] = v
        return v

    def _vote_row(self, kind: str, text: Any, ts: int | str, seq: int, extra: dict[str, Any]) -> Row:
        v = self._vote_text(text)
        extra["validator_fp"] = v.validator_fp
        if v.block_fp is None:
            extra["nil"] = True
        return (ts, kind, v.height, v.round, None, v.vote_type, "vote", None, v.validator_index, None, None, None,
                v.signer_ts, None, None, seq, _extra(extra))  # fmt: skip

    def _adding_vote(self, line: LogLine, ts: int | str, seq: int) -> Row:
        vtype = vote_type_name(str(line.vote_type)) if line.vote_type is not None else None
        return (ts, K.VOTE_ADDING, _i(line.vote_height), None, None, vtype, "vote", None, _i(line.val_index), None,
                None, None, None, None, None, seq, _opt_extra("cs_height", _i(line.cs_height)))  # fmt: skip

    def _added_vote_str(self, line: LogLine, ts: int | str, seq: int) -> Row:
        return self._vote_row(K.VOTE_ADDED, line.vote, ts, seq, {"set": "prevote"})

    def _added_precommit(self, line: LogLine, ts: int | str, seq: int) -> Row:
        if line.vote is not None:  # older versions print the vote string
            return self._vote_row(K.VOTE_ADDED, line.vote, ts, seq, {"set": "precommit"})
        signer_ts = None
        if isinstance(line.vote_timestamp, str):
            signer_ts = _ts_or_skip(line.vote_timestamp)
        validator = line.validator.upper() if isinstance(line.validator, str) else None
        return (ts, K.VOTE_ADDED, _i(line.height), _i(line.round), None, "precommit", "vote", validator, None, None,
                None, None, signer_ts, None, None, seq, _extra({"set": "precommit"}))  # fmt: skip

    def _added_last(self, line: LogLine, ts: int | str, seq: int) -> Row:
        hr = parse_voteset_hr(line.last_commit) if isinstance(line.last_commit, str) else None
        if line.vote is not None:
            return self._vote_row(K.VOTE_ADDED, line.vote, ts, seq, {"set": "last_commit"})
        return (ts, K.VOTE_ADDED, hr[0] if hr else None, hr[1] if hr else None, None, "precommit", "vote", None,
                None, None, None, None, None, None, None, seq, _extra({"set": "last_commit"}))  # fmt: skip

    def _sending_vote(self, line: LogLine, ts: int | str, seq: int) -> Row:
        return self._vote_row(K.VOTE_GOSSIP, line.vote, ts, seq, {})

    def _signed_vote(self, line: LogLine, ts: int | str, seq: int) -> Row:
        return self._vote_row(K.VOTE_SIGNED, line.vote, ts, seq, {})

    def _receive_block_part(self, line: LogLine, ts: int | str, seq: int) -> Row:
        peer = line.from_.lower() if isinstance(line.from_, str) else None
        return (ts, K.MSG_RECEIVED, _i(line.height), _i(line.round), None, None, "block_part", None, None,
                _i(line.index), peer, None, None, None, None, seq,
                _extra({"total": _i(line.total), "count": _i(line.count)}))  # fmt: skip

    def _proposal_row(self, kind: str, line: LogLine, ts: int | str, seq: int) -> Row:
        if not isinstance(line.proposal, str):
            raise Skip("missing proposal")
        p = parse_proposal(line.proposal)
        if p is None:
            raise Skip("unparsable proposal")
        proposer = line.proposer.upper() if isinstance(line.proposer, str) else None
        fp = {"parts_hash_fp": p.parts_hash_fp} if p.parts_hash_fp else {}
        extra = _extra({"pol_round": p.pol_round, "parts_total": p.parts_total, **fp})
        return (ts, kind, p.height, p.round, None, None, "proposal", proposer, None, None, None, p.block_hash,
                p.signer_ts, None, None, seq, extra)  # fmt: skip

    def _received_proposal(self, line: LogLine, ts: int | str, seq: int) -> Row:
        return self._proposal_row(K.PROPOSAL_RECEIVED, line, ts, seq)

    def _signed_proposal(self, line: LogLine, ts: int | str, seq: int) -> Row:
        return self._proposal_row(K.PROPOSAL_SIGNED, line, ts, seq)

    def _complete_block(self, line: LogLine, ts: int | str, seq: int) -> Row:
        return (ts, K.BLOCK_COMPLETE, _i(line.height), _i(line.round), None, None, None, None, None, None, None,
                _hash(line.hash), None, None, None, seq, None)  # fmt: skip

    def _turn(self, line: LogLine, ts: int | str, seq: int, ours: bool) -> Row:
        proposer = line.proposer.upper() if isinstance(line.proposer, str) else None
        return (ts, K.PROPOSER_TURN, _i(line.height), _i(line.round), "propose", None, None, proposer, None, None,
                None, None, None, None, None, seq, _extra({"our_turn": ours}))  # fmt: skip

    def _our_turn(self, line: LogLine, ts: int | str, seq: int) -> Row:
        return self._turn(line, ts, seq, True)

    def _not_our_turn(self, line: LogLine, ts: int | str, seq: int) -> Row:
        return self._turn(line, ts, seq, False)

    def _timeout(self, kind: str, line: LogLine, ts: int | str, seq: int) -> Row:
        step = step_name(line.step) if isinstance(line.step, str) else None
        extra = None
        if isinstance(line.dur, str):
            try:
                extra = K.timeout_extra(parse_go_duration_ns(line.dur))
            except ValueError:
                raise Skip("malformed field") from None
        elif isinstance(line.dur, int):  # some encoders print durations as ns integers
            extra = K.timeout_extra(line.dur)
        return (ts, kind, _i(line.height), _i(line.round), step, None, None, None, None, None, None, None, None,
                None, None, seq, extra)  # fmt: skip

    def _scheduled_timeout(self, line: LogLine, ts: int | str, seq: int) -> Row:
        return self._timeout(K.TIMEOUT_SCHEDULED, line, ts, seq)

    def _timed_out(self, line: LogLine, ts: int | str, seq: int) -> Row:
        return self._timeout(K.TIMEOUT_FIRED, line, ts, seq)

    def _locking(self, line: LogLine, ts: int | str, seq: int) -> Row:
        return (ts, K.POLKA_LOCK, _i(line.height), _i(line.round), "precommit", None, None, None, None, None, None,
                _hash(line.hash), None, None, None, seq, None)  # fmt: skip

    def _valid_block(self, line: LogLine, ts: int | str, seq: int) -> Row:
        extra = _extra({"pol_round": _i(line.pol_round), "valid_round": _i(line.valid_round)})
        return (ts, K.VALID_BLOCK, _i(line.height), _i(line.round), None, None, None, None, None, None, None, None,
                None, None, None, seq, extra)  # fmt: skip

    def _finalizing(self, line: LogLine, ts: int | str, seq: int) -> Row:
        return (ts, K.COMMIT_FINALIZING, _i(line.height), None, None, None, None, None, None, None, None,
                _hash(line.hash), None, None, None, seq, _extra({"num_txs": _i(line.num_txs)}))  # fmt: skip

    def _committed_block(self, line: LogLine, ts: int | str, seq: int) -> Row:
        block_hash, proposer = parse_block_summary(line.block) if isinstance(line.block, str) else (None, None)
        return (ts, K.BLOCK_COMMITTED, _i(line.height), None, None, None, None, proposer, None, None, None,
                block_hash, None, None, None, seq, None)  # fmt: skip

    def _executed_block(self, line: LogLine, ts: int | str, seq: int) -> Row:
        txs = line.validTxs if line.validTxs is not None else line.num_valid_txs
        return (ts, K.BLOCK_EXECUTED, _i(line.height), None, None, None, None, None, None, None, None, None, None,
                None, None, seq, _extra({"valid_txs": _i(txs)}) if txs is not None else None)  # fmt: skip

    def _committed_state(self, line: LogLine, ts: int | str, seq: int) -> Row:
        return (ts, K.STATE_COMMITTED, _i(line.height), None, None, None, None, None, None, None, None, None, None,
                None, None, seq, _extra({"txs": _i(line.txs)}) if line.txs is not None else None)  # fmt: skip

    # --- steps ---------------------------------------------------------------------------

    def _make_step(self, step: str) -> Handler:
        def handle(line: LogLine, ts: int | str, seq: int) -> Row:
            height = _i(line.height)
            rnd = _i(line.round) if line.round is not None else _i(line.commit_round)
            if height is None and isinstance(line.current, str):  # a few versions log only `current`
                hrs = parse_hrs(line.current)
                height = hrs[0] if hrs else None
            extra: dict[str, Any] = {}
            prev = line.previous if line.previous is not None else line.current
            if isinstance(prev, str):
                extra["previous" if line.previous is not None else "current"] = prev
            proposer = line.proposer.upper() if isinstance(line.proposer, str) else None
            return (ts, K.STEP, height, rnd, step, None, None, proposer, None, None, None, None, None, None, None,
                    seq, _extra(extra) if extra else None)  # fmt: skip

        return handle

    def _make_step_invalid(self, step: str) -> Handler:
        def handle(line: LogLine, ts: int | str, seq: int) -> Row:
            extra = {"current": line.current} if isinstance(line.current, str) else None
            return (ts, K.STEP_INVALID, _i(line.height), _i(line.round), step, None, None, None, None, None, None,
                    None, None, None, None, seq, _extra(extra) if extra else None)  # fmt: skip

        return handle

    # --- identity ------------------------------------------------------------------------

    def _node_validator(self, line: LogLine, ts: int | str, seq: int) -> Row:
        if not isinstance(line.addr, str):
            raise Skip("missing addr")
        return (ts, K.NODE_INFO, None, None, None, None, None, line.addr.upper(), None, None, None, None, None, None,
                None, seq, _extra({"pub_key": line.pubKey}) if line.pubKey else None)  # fmt: skip

    def _node_id(self, line: LogLine, ts: int | str, seq: int) -> Row:
        if not isinstance(line.ID, str):
            raise Skip("missing ID")
        return (ts, K.NODE_INFO, None, None, None, None, None, None, None, None, None, None, None, None, None, seq,
                _extra({"p2p_id": line.ID.lower()}))  # fmt: skip

    def _started_node(self, line: LogLine, ts: int | str, seq: int) -> Row:
        info = node_info_fields(line.nodeInfo) if isinstance(line.nodeInfo, str) else {}
        return (ts, K.NODE_INFO, None, None, None, None, None, None, None, None, None, None, None, None, None, seq,
                _extra(info) if info else None)  # fmt: skip

    def _version_info(self, line: LogLine, ts: int | str, seq: int) -> Row:
        sw = line.software
        return (ts, K.NODE_INFO, None, None, None, None, None, None, None, None, None, None, None, None, None, seq,
                _extra({"startup": True, "software": sw}) if sw is not None else _extra({"startup": True}))  # fmt: skip


def _opt_extra(key: str, value: Any) -> str | None:
    return None if value is None else _extra({key: value})


def _hash(v: Any) -> str | None:
    return v.upper() if isinstance(v, str) and v else None


def _ts_or_skip(text: str) -> int:
    try:
        return parse_rfc3339_ns(text)
    except ValueError:
        raise Skip("malformed timestamp") from None
