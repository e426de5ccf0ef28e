"""The replayed node's consensus as values: votes, commits, blocks and the timeline events (docs/live.md, Replay)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ABSENT", "COMMIT", "NIL", "STEP_NAMES", "Block", "BlockId", "Commit", "CommitSig", "Event", "Vote"]

# CommitSig.block_id_flag
ABSENT, COMMIT, NIL = 1, 2, 3

# The event model's step names → CometBFT's RoundStepType names.
STEP_NAMES = {
    "new_height": "RoundStepNewHeight",
    "new_round": "RoundStepNewRound",
    "propose": "RoundStepPropose",
    "prevote": "RoundStepPrevote",
    "prevote_wait": "RoundStepPrevoteWait",
    "precommit": "RoundStepPrecommit",
    "precommit_wait": "RoundStepPrecommitWait",
    "commit": "RoundStepCommit",
}


@dataclass(frozen=True, slots=True)
class BlockId:
    hash: str  # upper hex; "" for a nil vote
    parts_total: int = 0
    parts_hash: str = ""


NIL_ID = BlockId("")


@dataclass(frozen=True, slots=True)
class Vote:
    type: int  # 1 prevote, 2 precommit
    height: int
    round: int
    block_id: BlockId
    timestamp_ns: int | None
    validator: str
    index: int
    signature: bytes  # empty when the recording has none (logs)


@dataclass(frozen=True, slots=True)
class CommitSig:
    flag: int  # ABSENT, COMMIT, NIL
    validator: str  # "" when absent
    timestamp_ns: int | None
    signature: bytes | None


@dataclass(frozen=True, slots=True)
class Commit:
    height: int
    round: int
    block_id: BlockId
    sigs: tuple[CommitSig, ...]  # one per validator, in set order


@dataclass(frozen=True, slots=True)
class Block:
    height: int
    round: int  # the commit round
    block_id: BlockId
    proposer: str
    time_ns: int
    last_block_id: BlockId | None
    last_commit: Commit | None


@dataclass(frozen=True, slots=True)
class Event:
    """One RPC event of the node, at ``ts`` (the recording's local time, Unix ns).

    ``kind`` is the ``tm.event`` value: NewRound, NewRoundStep, CompleteProposal, Vote or NewBlock.
    """

    ts: int
    kind: str
    height: int
    round: int
    step: str  # RoundStep… name (the node's step when the event fired)
    vote: Vote | None = None
    block_id: BlockId | None = None  # CompleteProposal
    proposer: tuple[str, int] | None = None  # NewRound: address, index
