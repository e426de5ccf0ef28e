"""Parsers for the ``String()`` forms CometBFT prints inside log lines.

``Vote{…}``, ``Proposal{…}``, ``VoteSet{…}``, ``Peer{…}``, ``Block{…}`` and the ``h/r/RoundStepX``
round-state triple. These are the expensive part of a log line, so the log parser calls them only
for the messages that carry them. Each returns ``None`` when the text does not match, and the
caller counts the line as skipped.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from bftscope.families.cometbft.parse.proto import step_name
from bftscope.timeutil import parse_rfc3339_ns

__all__ = [
    "VoteText",
    "parse_block_summary",
    "parse_hrs",
    "parse_peer_src",
    "parse_proposal",
    "parse_vote",
    "parse_voteset_hr",
    "vote_type_name",
]

# v1: Vote{0:14723CA68371 4/00/SIGNED_MSG_TYPE_PREVOTE(Prevote) C3C61C93E975 2FD9C7900471 000000000000 @ ts}
# v0.34: Vote{0:14723CA68371 4/00/1(Prevote) C3C61C93E975 2FD9C7900471 @ ts}; nil votes print an empty hash.
_VOTE = re.compile(
    r"Vote\{(\d+):([0-9A-Fa-f]*) (\d+)/(\d+)/([A-Z_0-9]+)(?:\((\w+)\))? ([0-9A-Fa-f]*) ([0-9A-Fa-f]*)"
    r"(?: [0-9A-Fa-f]*)? @ ([0-9TZ:.\-+]+)\}"
)
# Proposal{2/0 (HASH:TOTAL:PSHASHFP, -1) SIGFP @ ts}
_PROPOSAL = re.compile(
    r"Proposal\{(\d+)/(\d+) \(([0-9A-Fa-f]*):(\d+):([0-9A-Fa-f]*), (-?\d+)\) ([0-9A-Fa-f]*) @ ([0-9TZ:.\-+]+)\}"
)
_VOTESET_HR = re.compile(r"VoteSet\{H:(\d+) R:(\d+) T:([A-Z_0-9]+)")
_HRS = re.compile(r"^(\d+)/(-?\d+)/(RoundStep\w+)$")
_PEER_SRC = re.compile(r"Peer\{MConn\{[^}]*\} ([0-9a-fA-F]+) (?:in|out)\}")
_BLOCK_HASH = re.compile(r"\}#([0-9A-F]{64})\s*$")
_BLOCK_PROPOSER = re.compile(r"Proposer:\s+([0-9A-F]{40})")

_VOTE_TYPES = {
    "SIGNED_MSG_TYPE_PREVOTE": "prevote",
    "SIGNED_MSG_TYPE_PRECOMMIT": "precommit",
    "SIGNED_MSG_TYPE_PROPOSAL": "proposal",
    "1": "prevote",
    "2": "precommit",
    "32": "proposal",
    "PrevoteType": "prevote",
    "PrecommitType": "precommit",
    "Prevote": "prevote",
    "Precommit": "precommit",
}


def vote_type_name(text: str) -> str | None:
    """``SIGNED_MSG_TYPE_PREVOTE`` / ``1`` / ``Prevote`` → ``prevote``."""
    return _VOTE_TYPES.get(text)


class VoteText(NamedTuple):
    validator_index: int
    validator_fp: str  # first 6 bytes of the address, upper-case hex
    height: int
    round: int
    vote_type: str | None
    block_fp: str | None  # None for a nil vote
    signer_ts: int


def parse_vote(text: str) -> VoteText | None:
    m = _VOTE.search(text)
    if m is None:
        return None
    try:
        ts = parse_rfc3339_ns(m.group(9))
    except ValueError:
        return None
    vtype = vote_type_name(m.group(5)) or (vote_type_name(m.group(6)) if m.group(6) else None)
    return VoteText(
        int(m.group(1)), m.group(2).upper(), int(m.group(3)), int(m.group(4)), vtype, m.group(7).upper() or None, ts
    )


class ProposalText(NamedTuple):
    height: int
    round: int
    block_hash: str | None
    parts_total: int
    pol_round: int
    signer_ts: int
    # A log prints the part-set hash as its first 6 bytes only (``hash:total:FINGERPRINT``): not the hash.
    parts_hash_fp: str | None = None


def parse_proposal(text: str) -> ProposalText | None:
    m = _PROPOSAL.search(text)
    if m is None:
        return None
    try:
        ts = parse_rfc3339_ns(m.group(8))
    except ValueError:
        return None
    return ProposalText(
        int(m.group(1)), int(m.group(2)), m.group(3).upper() or None, int(m.group(4)), int(m.group(6)), ts,
        m.group(5).upper() or None,
    )


def parse_voteset_hr(text: str) -> tuple[int, int, str | None] | None:
    """``VoteSet{H:4 R:0 T:SIGNED_MSG_TYPE_PRECOMMIT …`` → (height, round, vote type)."""
    m = _VOTESET_HR.search(text)
    if m is None:
        return None
    return int(m.group(1)), int(m.group(2)), vote_type_name(m.group(3))


def parse_hrs(text: str) -> tuple[int, int, str] | None:
    """``5/0/RoundStepNewHeight`` → (5, 0, "new_height")."""
    m = _HRS.match(text)
    if m is None:
        return None
    return int(m.group(1)), int(m.group(2)), step_name(m.group(3))


def parse_peer_src(text: str) -> str | None:
    """``Peer{MConn{127.0.0.1:57186} 1d8f… in}`` → the peer's node id."""
    m = _PEER_SRC.search(text)
    return m.group(1).lower() if m else None


def parse_block_summary(text: str) -> tuple[str | None, str | None]:
    """``Block{…}#HASH`` → (block hash, proposer address) when present."""
    h = _BLOCK_HASH.search(text)
    p = _BLOCK_PROPOSER.search(text)
    return (h.group(1) if h else None), (p.group(1) if p else None)
