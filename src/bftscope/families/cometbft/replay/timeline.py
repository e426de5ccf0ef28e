"""A recorded node's consensus as the timeline of RPC events it fired, in its own time order.

From the event rows of a :class:`~bftscope.families.cometbft.replay.recording.Recording`:

- a ``step`` row → ``NewRoundStep``; the first step of a round (``propose``, or ``new_round`` from a log) is
  preceded by ``NewRound`` with the round's designated proposer (:mod:`…validators.priority` from genesis);
- a vote the node added → ``Vote``. A WAL records a peer's vote as ``msg_received`` and the node's own as
  ``msg_internal`` (``msg_type`` vote); a log as ``vote_added``. CometBFT adds a vote of its current height, or a
  precommit of the previous one (its last commit); other votes, repeats and the dropped validator's are counted
  in :attr:`Timeline.skipped` and not sent;
- ``block_complete`` → ``CompleteProposal``;
- the end of a height (WAL ``height_end``, log ``block_committed``) → ``NewBlock``, once the height's commit
  round is known (its ``commit`` step).

A block's id is the +2/3 precommit majority of its commit round (else the proposal's); its time is CometBFT's
BFT time, the power-weighted median of the previous commit's timestamps (genesis time at the first height).
The commit of a height holds, per validator of the set, the precommit of the commit round the node had by the
next block: flag 2 for the block, 3 nil, 1 absent (also a vote for another block, and the dropped validator).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from bftscope.families.cometbft import kinds
from bftscope.families.cometbft.replay.cmttime import parse_rfc3339
from bftscope.families.cometbft.replay.model import (
    ABSENT,
    COMMIT,
    NIL,
    STEP_NAMES,
    Block,
    BlockId,
    Commit,
    CommitSig,
    Event,
    Vote,
)
from bftscope.families.cometbft.replay.recording import GenesisValidator, Recording
from bftscope.families.cometbft.validators import priority
from bftscope.families.cometbft.validators.priority import HeightSet

__all__ = ["Timeline", "build_timeline"]

_VOTE_TYPES = {"prevote": 1, "precommit": 2}
_WAL_MSGS = (kinds.MSG_RECEIVED, kinds.MSG_INTERNAL)


@dataclass
class Timeline:
    node: str
    chain_id: str
    genesis_time_ns: int
    initial_height: int
    validators: list[GenesisValidator]  # in CometBFT's set order (power descending, then address)
    events: list[Event] = field(default_factory=list)
    blocks: dict[int, Block] = field(default_factory=dict)
    commits: dict[int, Commit] = field(default_factory=dict)
    skipped: Counter[str] = field(default_factory=Counter)
    own_address: str | None = None
    p2p_id: str | None = None
    moniker: str | None = None
    peers: list[str] = field(default_factory=list)
    _sets: list[HeightSet] = field(default_factory=list)

    def set_at(self, height: int) -> HeightSet:
        """The state's validator set (with priorities) at ``height`` (the genesis set, moved one step a height)."""
        if not self._sets:
            self._sets.append(priority.genesis((v.address, v.power) for v in self.validators))
        while len(self._sets) <= height - self.initial_height:
            self._sets.append(priority.next_height(self._sets[-1]))
        return self._sets[max(0, height - self.initial_height)]

    def proposer(self, height: int, round_: int) -> tuple[str, int]:
        address = priority.proposer_at(self.set_at(height), round_)
        return address, self.index_of(address)

    def index_of(self, address: str) -> int:
        for i, v in enumerate(self.validators):
            if v.address == address:
                return i
        return -1

    @property
    def first_height(self) -> int | None:
        return min(self.blocks) if self.blocks else None


def _extra(row: dict[str, Any]) -> dict[str, Any]:
    try:
        value = json.loads(row["extra"]) if row.get("extra") else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _weighted_median(stamps: list[tuple[int, int]]) -> int:
    """CometBFT's ``MedianTime``: the timestamp at half the total power, going through them in time order."""
    stamps = sorted(stamps)
    median = sum(p for _, p in stamps) // 2
    for ts, power in stamps:
        if median <= power:
            return ts
        median -= power
    return stamps[-1][0]


class _Builder:
    def __init__(self, rec: Recording, drop: str | None) -> None:
        ordered = sorted(rec.validators, key=lambda v: (-v.power, bytes.fromhex(v.address)))
        genesis_ns = parse_rfc3339(rec.genesis_time)
        self.tl = Timeline(
            node=rec.node, chain_id=rec.chain_id, genesis_time_ns=genesis_ns or 0, initial_height=rec.initial_height,
            validators=ordered, p2p_id=rec.p2p_id, moniker=rec.moniker,
        )  # fmt: skip
        self.tl.skipped.update(rec.skipped)
        self.rec = rec
        self.drop = drop.upper() if drop else None
        self.height: int | None = None
        self.round = 0
        self.step = "RoundStepNewHeight"
        self.rounds_started: set[tuple[int, int]] = set()
        self.seen: set[tuple[int, int, int, str]] = set()
        self.precommits: dict[tuple[int, int], list[tuple[int, Vote]]] = {}  # (h, r) → (ts, vote), dropped too
        self.proposals: dict[tuple[int, int], BlockId] = {}
        self.commit_round: dict[int, int] = {}
        self.ends: list[tuple[int, int]] = []  # (ts, height) of each height's end
        self.peers: dict[str, None] = {}
        self.proposers: dict[tuple[int, int], str] = {}  # (h, r) → proposer named by a log
        by_fp = {v.address[:12]: v.address for v in ordered}
        self.by_fp, self.by_index = by_fp, [v.address for v in ordered]

    def add(self, ts: int, kind: str, h: int, r: int, **kw: Any) -> None:
        self.tl.events.append(Event(ts, kind, h, r, self.step, **kw))

    def on_step(self, ts: int, h: int, r: int, step: str, proposer: str | None) -> None:
        self.height, self.round = h, r
        if step in ("new_round", "propose") and (h, r) not in self.rounds_started:
            self.rounds_started.add((h, r))
            self.step = STEP_NAMES["new_round"]
            if proposer:  # a log names the round's proposer: it wins over the rule
                self.proposers[(h, r)] = proposer
            who = (proposer, self.tl.index_of(proposer)) if proposer else self.tl.proposer(h, r)
            self.add(ts, "NewRound", h, r, proposer=who)
        if step == "commit":
            self.commit_round[h] = r
        if step != "new_round" and step in STEP_NAMES:
            self.step = STEP_NAMES[step]
            self.add(ts, "NewRoundStep", h, r)

    def on_vote(self, ts: int, row: dict[str, Any]) -> None:
        h, r, vtype = row["height"], row["round"], _VOTE_TYPES.get(row["vote_type"] or "")
        validator = row["validator"] or self._log_validator(row)
        if r is None and vtype == 2 and h in self.commit_round:  # a log's "added to last precommits" has no round
            r = self.commit_round[h]
        if h is None or r is None or vtype is None or not validator:
            self.tl.skipped["vote without height, round, type or validator"] += 1
            return
        if self.height is not None and not (h == self.height or (h == self.height - 1 and vtype == 2)):
            self.tl.skipped["vote not for the node's height (not added by CometBFT)"] += 1
            return
        key = (h, r, vtype, validator)
        if key in self.seen:
            self.tl.skipped["vote seen again (added once)"] += 1
            return
        self.seen.add(key)
        if row["kind"] == kinds.MSG_INTERNAL:
            self.tl.own_address = validator
        elif row.get("peer"):
            self.peers[row["peer"]] = None
        wire = self.rec.wires.get((row["file"], row["seq"]))
        bhash = row["block_hash"] or ""
        if not self.rec.from_wal and not bhash:  # a log prints only a fingerprint: the round's proposal block
            bhash = self.proposals[(h, r)].hash if (h, r) in self.proposals else ""
        block_id = BlockId(bhash, wire.parts_total, wire.parts_hash) if wire and bhash else BlockId(bhash)
        index = row["validator_index"] if row["validator_index"] is not None else self.tl.index_of(validator)
        vote = Vote(vtype, h, r, block_id, row["signer_ts"], validator, index,
                    wire.signature if wire else b"")  # fmt: skip
        if vtype == 2:
            self.precommits.setdefault((h, r), []).append((ts, vote))
        if validator == self.drop:
            self.tl.skipped["vote of the dropped validator"] += 1
            return
        self.add(ts, "Vote", h, r, vote=vote)

    def _log_validator(self, row: dict[str, Any]) -> str | None:
        """A log's vote names its validator by a 12-hex fingerprint and its index in the set."""
        fp = _extra(row).get("validator_fp")
        if isinstance(fp, str) and fp.upper() in self.by_fp:
            return self.by_fp[fp.upper()]
        i = row["validator_index"]
        return self.by_index[i] if isinstance(i, int) and 0 <= i < len(self.by_index) else None

    def on_proposal(self, row: dict[str, Any]) -> None:
        h, r, bhash = row["height"], row["round"], row["block_hash"]
        if h is None or r is None or not bhash:
            return
        extra = _extra(row)
        self.proposals.setdefault((h, r), BlockId(bhash, int(extra.get("parts_total", 0)), extra.get("parts_hash", "")))

    def feed(self, row: dict[str, Any]) -> None:
        ts, kind, h, r = row["ts"], row["kind"], row["height"], row["round"]
        if r is None and kind == kinds.BLOCK_COMPLETE and h == self.height:  # a log line without the round
            r = self.round
        msg_type = row.get("msg_type")
        if kind == kinds.STEP and h is not None and r is not None and row["step"]:
            self.on_step(ts, h, r, row["step"], row["validator"] if row["step"] == "new_round" else None)
        elif kind == kinds.VOTE_ADDED if not self.rec.from_wal else (kind in _WAL_MSGS and msg_type == "vote"):
            self.on_vote(ts, row)
        elif msg_type == "proposal" or kind == kinds.PROPOSAL_RECEIVED:
            self.on_proposal(row)
            if row.get("peer"):
                self.peers[row["peer"]] = None
        elif kind == kinds.BLOCK_COMPLETE and h is not None and r is not None and row["block_hash"]:
            self.add(ts, "CompleteProposal", h, r, block_id=self.proposals.get((h, r), BlockId(row["block_hash"])))
        elif kind == (kinds.HEIGHT_END if self.rec.from_wal else kinds.BLOCK_COMMITTED) and h in self.commit_round:
            self.ends.append((ts, h))
            self.add(ts, "NewBlock", h, self.commit_round[h])

    def commit(self, h: int, until: int | None) -> Commit | None:
        r = self.commit_round.get(h)
        if r is None:
            return None
        votes = [v for ts, v in self.precommits.get((h, r), []) if until is None or ts <= until]
        power = {v.address: v.power for v in self.tl.validators}
        tally: Counter[BlockId] = Counter()
        for v in votes:
            if v.block_id.hash:
                tally[v.block_id] += power.get(v.validator, 0)
        total = sum(power.values())
        majority = [bid for bid, p in tally.items() if 3 * p > 2 * total]
        block_id = majority[0] if majority else self.proposals.get((h, r))
        if block_id is None:
            return None
        by_validator = {v.validator: v for v in votes if v.validator != self.drop}
        sigs = []
        for val in self.tl.validators:
            got = by_validator.get(val.address)
            if got is None or (got.block_id.hash and got.block_id.hash != block_id.hash):
                sigs.append(CommitSig(ABSENT, "", None, None))
            else:
                flag = COMMIT if got.block_id.hash else NIL
                sigs.append(CommitSig(flag, got.validator, got.timestamp_ns, got.signature))
        return Commit(h, r, block_id, tuple(sigs))

    def finish(self) -> Timeline:
        tl = self.tl
        end_ts = dict((h, ts) for ts, h in self.ends)
        for h in sorted(end_ts):
            commit = self.commit(h, end_ts.get(h + 1))
            if commit is not None:
                tl.commits[h] = commit
        power = {v.address: v.power for v in tl.validators}
        for h in sorted(tl.commits):
            c = tl.commits[h]
            last = tl.commits.get(h - 1)
            stamps = [(s.timestamp_ns, power.get(s.validator, 0)) for s in (last.sigs if last else ())
                      if s.flag == COMMIT and s.timestamp_ns is not None]  # fmt: skip
            if h == tl.initial_height or not stamps:
                time_ns = tl.genesis_time_ns if h == tl.initial_height else (end_ts.get(h) or 0)
            else:
                time_ns = _weighted_median(stamps)
            proposer = self.proposers.get((h, c.round)) or tl.proposer(h, c.round)[0]
            tl.blocks[h] = Block(h, c.round, c.block_id, proposer, time_ns,
                                 last.block_id if last else None, last)  # fmt: skip
        tl.events = [e for e in tl.events if e.kind != "NewBlock" or e.height in tl.blocks]
        tl.peers = list(self.peers)
        return tl


def build_timeline(rec: Recording, *, drop_validator: str | None = None) -> Timeline:
    """The node's RPC events in its time order (WAL record order; log rows by time), blocks and commits."""
    builder = _Builder(rec, drop_validator)
    if drop_validator and builder.drop not in {v.address for v in rec.validators}:
        raise ValueError(f"--drop-validator {drop_validator}: not a validator of genesis.json")
    rows = rec.rows if rec.from_wal else sorted(rec.rows, key=lambda row: row["ts"])
    for row in rows:
        builder.feed(row)
    return builder.finish()
