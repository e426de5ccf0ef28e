"""One member of a validator set at some height."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Validator"]


@dataclass(frozen=True, slots=True)
class Validator:
    """``address`` upper-case hex; ``power`` voting power; ``proposer_priority`` as CometBFT keeps it at that
    height (``None`` when not known); ``index`` the position in the set (CometBFT orders a set by power,
    highest first, then by address)."""

    address: str
    power: int
    proposer_priority: int | None = None
    index: int = 0
