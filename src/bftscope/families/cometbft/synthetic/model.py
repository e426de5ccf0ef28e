"""Records of the synthetic chain: run setup, blocks, proposals, votes, vote sets and node state.

Owns the objects that :mod:`.consensus` passes around, and builds each signed object's wire
encodings and log strings exactly once (a vote is received by every peer; its bytes and its
``Vote{...}`` text are shared by every line that mentions it).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bftscope.families.cometbft.synthetic import encode
from bftscope.families.cometbft.synthetic.lines import (
    VOTE_TYPE_NAMES,
    ZERO_FP,
    Wire,
    block_id_string,
    fp,
    json_str,
    part_string,
    proposal_string,
    rfc3339,
    vote_string,
)
from bftscope.families.cometbft.synthetic.p2p import Msg

__all__ = ["Block", "NodeState", "Proposal", "Setup", "Vote", "VoteSet"]

NEWHEIGHT, NEWROUND, PROPOSE, PREVOTE, PREVOTEWAIT, PRECOMMIT, PRECOMMITWAIT, COMMIT = range(1, 9)


@dataclass
class Setup:
    """Everything the engine needs, resolved to per-node/per-pair integer microseconds."""

    n: int
    seed: int
    chain_id: str
    genesis_us: int  # Unix µs of the genesis (height-1 block time)
    base_us: list[int]  # Unix µs of true time 0 on node i's clock (run start + its clock offset)
    latency_us: list[list[int]]
    throttle_us: list[int]
    gossip_us: list[int]
    drop: list[list[float]]
    jitter_us: float
    node_ids: list[str]
    addrs: list[str]  # validator addresses, upper-case hex
    pub_keys: list[str]
    wires: list[list[Wire | None]]
    powers: list[int]
    silent: frozenset[int]
    escalations: frozenset[int]
    propose_us: list[int]
    propose_delta_us: list[int]
    prevote_us: list[int]
    prevote_delta_us: list[int]
    precommit_us: list[int]
    precommit_delta_us: list[int]
    commit_us: list[int]
    block_parts: int
    max_height: int | None
    validators_hash: str
    consensus_hash: str
    app_hash: str = "0000000000000000"
    home: str = "mytestnet"  # the testnet folder printed in "P2P Node ID" file paths
    addr_bytes: list[bytes] = field(default_factory=list)
    addr_fps: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.addr_bytes = [bytes.fromhex(a) for a in self.addrs]
        self.addr_fps = [a[:12] for a in self.addrs]


class Block:
    """A proposed block (empty: no txs). Its parts' payload is opaque random bytes of a plausible size."""

    __slots__ = (
        "absent",
        "aunts",
        "block_id",
        "commit_sigs",
        "hash",
        "hash_hex",
        "height",
        "last_block_id",
        "last_commit_hash",
        "last_round",
        "leaves",
        "parts",
        "parts_fp",
        "parts_hash",
        "parts_total",
        "prop",
        "proposer",
        "text",
        "time_us",
    )

    def __init__(
        self,
        height: int,
        proposer: int,
        time_us: int,
        block_hash: bytes,
        parts_hash: bytes,
        parts: list[bytes],
        leaves: list[bytes],
        aunts: list[list[bytes]],
        commit_sigs: list[str],
        last_commit_hash: str,
        absent: list[int],
    ) -> None:
        self.height = height
        self.proposer = proposer
        self.time_us = time_us
        self.hash = block_hash
        self.hash_hex = block_hash.hex().upper()
        self.parts_hash = parts_hash
        self.parts_total = len(parts)
        self.parts_fp = fp(parts_hash)
        self.block_id = block_id_string(self.hash_hex, self.parts_total, self.parts_fp)
        self.parts = parts
        self.leaves = leaves
        self.aunts = aunts
        self.commit_sigs = commit_sigs
        self.last_commit_hash = last_commit_hash
        self.absent = absent  # validators without a commit signature in this block's LastCommit
        self.text: str | None = None  # Block.String(), built when first committed
        self.prop: Proposal | None = None  # the first proposal that carried it (to re-send its parts)
        self.last_block_id = ":0:000000000000"  # BlockID of the previous block (empty at height 1)
        self.last_round = 0  # round of the previous height's commit (LastCommit.Round)


class Proposal:
    """A signed proposal of ``block`` at (height, round), with its Proposal and BlockPart messages."""

    __slots__ = ("block", "has_part_msgs", "height", "msg", "part_msgs", "pol_round", "proposer", "round", "text")

    def __init__(self, block: Block, round_: int, pol_round: int, proposer: int, signature: bytes) -> None:
        self.block = block
        if block.prop is None:
            block.prop = self
        self.height = h = block.height
        self.round = round_
        self.pol_round = pol_round
        self.proposer = proposer
        ts = rfc3339(block.time_us)
        self.text = proposal_string(h, round_, block.block_id, pol_round, fp(signature), ts)
        body = encode.proposal(
            h, round_, pol_round, block.hash, block.parts_total, block.parts_hash, block.time_us * 1000, signature
        )
        self.msg = Msg("proposal", encode.msg_proposal(body), f"[Proposal {self.text}]")
        self.part_msgs: list[Msg] = []
        self.has_part_msgs: list[Msg] = []
        total = block.parts_total
        for idx, data in enumerate(block.parts):
            raw = encode.msg_block_part(h, round_, idx, data, total, idx, block.leaves[idx], block.aunts[idx])
            text = json_str(f"[BlockPart H:{h} R:{round_} P:{part_string(idx, data, block.aunts[idx])}]")[1:-1]
            self.part_msgs.append(Msg("block_part", raw, text))
            self.has_part_msgs.append(
                Msg(
                    "has_proposal_block_part",
                    encode.msg_has_proposal_block_part(h, round_, idx),
                    f"[HasProposalBlockPart PI:{idx} HR:{{{h}/{round_:02d}}}]",
                )
            )


class Vote:
    """A signed prevote/precommit (``block`` None = nil) with its Vote and HasVote messages."""

    __slots__ = ("block", "has_vote", "height", "msg", "round", "sig_fp", "text", "ts", "ts_us", "val", "vtype")

    def __init__(
        self, setup: Setup, vtype: int, height: int, round_: int, val: int, block: Block | None, ts_us: int, sig: bytes
    ) -> None:
        self.vtype = vtype
        self.height = height
        self.round = round_
        self.val = val
        self.block = block
        self.ts_us = ts_us
        self.ts = rfc3339(ts_us)
        self.sig_fp = fp(sig)
        if block is None:
            bh, total, ph, hash_fp = b"", 0, b"", ZERO_FP
        else:
            bh, total, ph, hash_fp = block.hash, block.parts_total, block.parts_hash, block.hash_hex[:12]
        self.text = vote_string(val, setup.addr_fps[val], height, round_, vtype, hash_fp, self.sig_fp, self.ts)
        body = encode.vote(vtype, height, round_, bh, total, ph, ts_us * 1000, setup.addr_bytes[val], val, sig)
        self.msg = Msg("vote", encode.msg_vote(body), f"[Vote {self.text}]")
        self.has_vote = Msg(
            "has_vote",
            encode.msg_has_vote(height, round_, vtype, val),
            f"[HasVote VI:{val} V:{{{height}/{round_:02d}/{VOTE_TYPE_NAMES[vtype]}}}]",
        )


class VoteSet:
    """Votes of one (height, round, type) at one node; tracks +2/3 of any and +2/3 for one BlockID."""

    __slots__ = ("bits", "by_block", "height", "maj", "maj_set", "round", "sum", "total", "votes", "vtype")

    def __init__(self, n: int, total: int, height: int, round_: int, vtype: int) -> None:
        self.height = height
        self.round = round_
        self.vtype = vtype
        self.total = total
        self.votes: dict[int, Vote] = {}
        self.bits = bytearray(b"_" * n)
        self.sum = 0
        self.by_block: dict[Block | None, int] = {}
        self.maj: Block | None = None  # meaningful only when maj_set (None = +2/3 for nil)
        self.maj_set = False

    def add(self, vote: Vote, power: int) -> bool:
        if vote.val in self.votes:
            return False
        self.votes[vote.val] = vote
        self.bits[vote.val] = 0x78  # "x"
        self.sum += power
        got = self.by_block.get(vote.block, 0) + power
        self.by_block[vote.block] = got
        if not self.maj_set and got * 3 > self.total * 2:
            self.maj_set = True
            self.maj = vote.block
        return True

    def any23(self) -> bool:
        return self.sum * 3 > self.total * 2

    def bit_string(self) -> str:
        return self.bits.decode("ascii")

    def maj_string(self) -> str | None:
        if not self.maj_set:
            return None
        return self.maj.block_id if self.maj is not None else ":0:000000000000"


class NodeState:
    """One node's consensus state (the parts of CometBFT's RoundState the simulation needs)."""

    def __init__(self, idx: int) -> None:
        self.idx = idx
        self.now = 0  # the consensus goroutine's cursor: its lines are written at ≥ this time
        self.height = 1
        self.round = 0
        self.step = NEWHEIGHT
        self.start_time = 0
        self.commit_time = 0
        self.commit_round = -1
        self.proposal: Proposal | None = None
        self.parts_block: Block | None = None  # the block whose parts we are collecting
        self.parts_have: list[bool] = []
        self.parts_count = 0
        self.block: Block | None = None  # complete ProposalBlock
        self.want: Block | None = None  # committed block we still need the parts of
        self.locked_round = -1
        self.locked_block: Block | None = None
        self.valid_round = -1
        self.valid_block: Block | None = None
        self.votes: dict[tuple[int, int, int], VoteSet] = {}
        self.last_commit: VoteSet | None = None
        self.last_commit_round = -1
        self.last_block: Block | None = None
        self.triggered_precommit = False
        self.timer_gen = 0
        self.timer_hrs = (0, 0, 0)
        # own proposal, parts and votes, processed after the current step (CometBFT's internal queue)
        self.internal: list[tuple[Proposal | Vote, int]] = []
        self.peer_votes: dict[int, int] = {}
        self.peer_parts: dict[int, int] = {}
        self.after_commit: list[tuple[int, Vote]] = []  # own precommits to send peers after committing
