"""Parser of the ``msg`` of the consensus reactor's ``Receive`` log line.

The reactor prints the decoded message with Go's ``%v``: ``[Vote Vote{…}]``,
``[HasVote VI:1 V:{2/00/SIGNED_MSG_TYPE_PREVOTE}]``, ``[NewRoundStep H:5 R:0 S:RoundStepNewHeight LCR:0]``,
``[BlockPart H:1 R:0 P:Part{#0 …}]``, ``[Proposal Proposal{…} POL:…]`` …
"""

from __future__ import annotations

import re

from bftscope.families.cometbft.parse.proto import step_name
from bftscope.families.cometbft.parse.strings import parse_proposal, parse_vote, vote_type_name

__all__ = ["ReceivedMsg", "parse_receive_msg"]

# (msg_type, height, round, vote_type, validator_index, part_index, signer_ts, extra JSON)
ReceivedMsg = tuple[str, int | None, int | None, str | None, int | None, int | None, int | None, str | None]

_TYPES = {
    "Vote": "vote",
    "HasVote": "has_vote",
    "NewRoundStep": "new_round_step",
    "NewValidBlock": "new_valid_block",
    "ValidBlockMessage": "new_valid_block",
    "VSM23": "vote_set_maj23",
    "VSB": "vote_set_bits",
    "Proposal": "proposal",
    "ProposalPOL": "proposal_pol",
    "BlockPart": "block_part",
    "VoteSetMaj23": "vote_set_maj23",
    "VoteSetBits": "vote_set_bits",
    "HasProposalBlockPart": "has_proposal_block_part",
}
_HAS_VOTE = re.compile(r"VI:(\d+) V:\{(\d+)/(\d+)/([A-Z_0-9]+)")
_HR = re.compile(r"\bH:(\d+) R:(-?\d+)")
_HRT = re.compile(r"^\[\w+ (\d+)/(\d+)/([A-Z_0-9]+)")  # [VSM23 5/00/SIGNED_MSG_TYPE_PREVOTE …]
_STEP = re.compile(r"\bS:(RoundStep\w+)")
_PART = re.compile(r"Part\{#(\d+)")


def parse_receive_msg(text: str) -> ReceivedMsg | None:
    """``None`` when the text is not a recognisable consensus message."""
    if not text.startswith("["):
        return None
    sp = text.find(" ")
    name = text[1:sp] if sp > 0 else text[1:].rstrip("]")
    msg_type = _TYPES.get(name)
    if msg_type is None:
        return None
    if msg_type == "vote":
        v = parse_vote(text)
        if v is None:
            return None
        nil = ',"nil":true' if v.block_fp is None else ""
        extra = f'{{"validator_fp":"{v.validator_fp}"{nil}}}'
        return ("vote", v.height, v.round, v.vote_type, v.validator_index, None, v.signer_ts, extra)
    if msg_type == "has_vote":
        m = _HAS_VOTE.search(text)
        if m is None:
            return None
        return ("has_vote", int(m.group(2)), int(m.group(3)), vote_type_name(m.group(4)), int(m.group(1)), None,
                None, None)  # fmt: skip
    if msg_type == "proposal":
        p = parse_proposal(text)
        if p is None:
            return None
        return ("proposal", p.height, p.round, None, None, None, p.signer_ts, None)
    if msg_type in ("vote_set_maj23", "vote_set_bits"):
        m3 = _HRT.match(text)
        if m3 is not None:
            return (msg_type, int(m3.group(1)), int(m3.group(2)), vote_type_name(m3.group(3)), None, None, None,
                    None)  # fmt: skip
    hr = _HR.search(text)
    height = int(hr.group(1)) if hr else None
    rnd = int(hr.group(2)) if hr else None
    part: int | None = None
    step_extra: str | None = None
    if msg_type == "block_part":
        pm = _PART.search(text)
        part = int(pm.group(1)) if pm else None
    elif msg_type == "new_round_step":
        sm = _STEP.search(text)
        if sm:
            step_extra = f'{{"step":"{step_name(sm.group(1))}"}}'
    return (msg_type, height, rnd, None, None, part, None, step_extra)
