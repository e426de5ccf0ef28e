"""CometBFT's proposer selection: who is the designated proposer of each height and round.

A validator set carries a priority per validator. Choosing the proposer of the next round adds each
validator's voting power to its priority and picks the highest (the lowest address wins a tie), whose
priority then drops by the set's total power — a weighted round robin. Before each step priorities are
rescaled so that their spread stays within twice the total power, and centred on zero. A new set (genesis)
starts every member at the same priority; the state's set of a height is the previous height's set moved one
step, and round ``r`` of a height is ``r`` further steps from it.

The rule follows CometBFT's ``types/validator_set.go`` (``IncrementProposerPriority``, ``RescalePriorities``,
``shiftByAvgProposerPriority``); the integer arithmetic matches Go's (division truncating towards zero when
rescaling, floor division for the average) so the priorities equal what ``/validators`` reports.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from bftscope.families.cometbft.validators.validator import Validator

__all__ = ["HeightSet", "genesis", "next_height", "proposer_at", "schedule"]

_WINDOW_FACTOR = 2  # PriorityWindowSizeFactor
_INT64_MAX = (1 << 63) - 1
_INT64_MIN = -(1 << 63)


def _clip(v: int) -> int:
    return max(_INT64_MIN, min(_INT64_MAX, v))


def _ordered(vals: Iterable[Validator]) -> list[Validator]:
    """CometBFT's set order: power descending, then address ascending; indexes renumbered."""
    ranked = sorted(vals, key=lambda v: (-v.power, bytes.fromhex(v.address)))
    return [Validator(v.address, v.power, v.proposer_priority, i) for i, v in enumerate(ranked)]


def _total(vals: Sequence[Validator]) -> int:
    return sum(v.power for v in vals)


def _rescaled(prios: list[int], total: int) -> list[int]:
    window = _WINDOW_FACTOR * total
    spread = max(prios) - min(prios)
    if window <= 0 or spread <= window:
        return prios
    ratio = -(-spread // window)  # ceil
    return [_go_quo(p, ratio) for p in prios]


def _go_quo(a: int, b: int) -> int:
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


def _centred(prios: list[int]) -> list[int]:
    avg = sum(prios) // len(prios)  # big.Int.Div with a positive divisor: floor
    return [_clip(p - avg) for p in prios]


def _winner(vals: Sequence[Validator], prios: Sequence[int]) -> int:
    best = 0
    for i in range(1, len(vals)):
        if prios[i] > prios[best] or (
            prios[i] == prios[best] and bytes.fromhex(vals[i].address) < bytes.fromhex(vals[best].address)
        ):
            best = i
    return best


def _steps(vals: Sequence[Validator], times: int) -> tuple[list[int], int]:
    """Priorities after ``times`` proposer selections, and the index of the last one chosen."""
    if not vals:
        raise ValueError("an empty validator set has no proposer")
    if times < 1:
        raise ValueError("times must be at least 1")
    total = _total(vals)
    prios = [v.proposer_priority or 0 for v in vals]
    prios = _centred(_rescaled(prios, total))
    chosen = 0
    for _ in range(times):
        prios = [_clip(p + v.power) for p, v in zip(prios, vals, strict=True)]
        chosen = _winner(vals, prios)
        prios[chosen] = _clip(prios[chosen] - total)
    return prios, chosen


@dataclass(frozen=True)
class HeightSet:
    """A validator set as a node's state holds it at one height: priorities after the step that chose the
    height's first proposer, and that proposer (CometBFT keeps it beside the priorities: it cannot be read
    back from them)."""

    validators: list[Validator]
    proposer: str


def _step(vals: Sequence[Validator], times: int) -> HeightSet:
    prios, chosen = _steps(vals, times)
    moved = [Validator(v.address, v.power, p, v.index) for v, p in zip(vals, prios, strict=True)]
    return HeightSet(moved, vals[chosen].address)


def genesis(members: Iterable[tuple[str, int]]) -> HeightSet:
    """The set of a chain's first height from ``(address, power)`` pairs (``genesis.json``): every member
    starts at the same priority, and the first selection is made (CometBFT's ``NewValidatorSet``)."""
    fresh = _ordered(Validator(a.upper(), int(p), 0) for a, p in members if int(p) > 0)
    return _step(fresh, 1)


def next_height(current: HeightSet) -> HeightSet:
    """The set of the next height when it did not change: one selection further."""
    return _step(current.validators, 1)


def proposer_at(current: HeightSet, round_: int) -> str:
    """The designated proposer of round ``round_`` of the height whose state set is ``current``."""
    if round_ <= 0:
        return current.proposer
    return _step(current.validators, round_).proposer


def schedule(start: HeightSet, heights: int) -> list[HeightSet]:
    """The state's set at each of ``heights`` consecutive heights from ``start`` (no set changes between)."""
    out = [start]
    for _ in range(heights - 1):
        out.append(next_height(out[-1]))
    return out
