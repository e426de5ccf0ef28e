"""What the view shows, as immutable values: one :class:`TopView` per frame (a paused screen keeps its last one),
and the :class:`SourceStatus` a row source reports. No behaviour lives here; :mod:`.state` computes them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

__all__ = ["Connection", "HeightLine", "Mark", "SlowLine", "SourceStatus", "Tally", "TopView", "ValidatorLike",
           "ValidatorLine"]  # fmt: skip

Connection = Literal["connected", "reconnecting", "unknown"]
# A validator's vote of one type in the current round: for a block, nil, not seen yet in a round watched from
# its start, or not knowable (round not watched whole / connection down).
Mark = Literal["block", "nil", "waiting", "unknown"]


class ValidatorLike(Protocol):
    """The shape of ``validators.validator.Validator`` that the view needs."""

    @property
    def address(self) -> str: ...
    @property
    def power(self) -> int: ...
    @property
    def index(self) -> int: ...


@dataclass(frozen=True)
class SourceStatus:
    """The row source's side of the header: its connection, and how many frames it has received."""

    connection: Connection = "unknown"
    network: str = ""
    endpoint: str = ""
    frames: int = 0
    reconnects: int = 0  # connections lost so far: a loss between two looks at the status is still seen
    detail: str = ""


@dataclass(frozen=True)
class ValidatorLine:
    address: str
    name: str
    power: int
    prevote: Mark
    precommit: Mark
    delay_ms: float | None  # median arrival delay over recent heights, None without samples


@dataclass(frozen=True)
class Tally:
    """Voting power of one vote type in the current round."""

    vote_type: str
    for_block: int  # power behind the block with the most power
    nil: int
    seen: int  # every vote seen, any block or nil
    total: int
    threshold: int  # the least power that is more than 2/3 of total

    @property
    def reached(self) -> bool:
        return self.for_block >= self.threshold or self.seen >= self.threshold


@dataclass(frozen=True)
class HeightLine:
    height: int
    duration_ms: float | None  # entering the height → its commit step (None if either was not observed)
    rounds: int | None  # rounds the height needed; None when the monitor did not watch it whole
    proposer: str | None  # name or address of the committed round's proposer, None when not known
    committed: bool
    gap: bool  # lies in an observation gap


@dataclass(frozen=True)
class SlowLine:
    address: str
    name: str
    delay_ms: float
    samples: int


@dataclass(frozen=True)
class TopView:
    """One frame of the view, computed at ``now_ns``; immutable, so a paused screen can keep showing it."""

    height: int | None
    round: int | None
    step: str | None
    step_age_s: float | None
    connection: Connection
    validators: list[ValidatorLine]
    tallies: list[Tally]
    recent: list[HeightLine]
    slowest: list[SlowLine]
    rows: int
    skipped: dict[str, int]
