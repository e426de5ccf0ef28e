"""Plays a timeline at a speed: fires each event when its recorded time comes, and keeps the node's state
(latest block, current height/round/step and the votes of the current height) for the RPC methods.

Time: ``speed`` recorded seconds pass per real second (1 = real time). The clock starts at :meth:`Player.start`;
until then the node is at the height before its first recorded block. Listeners get the events fired after they
were added (a real node sends a new subscriber what happens from then on).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from bftscope.families.cometbft.replay.laps import Laps
from bftscope.families.cometbft.replay.model import Block, Commit, Event, Vote
from bftscope.families.cometbft.replay.timeline import Timeline
from bftscope.families.cometbft.validators.priority import HeightSet

__all__ = ["Player", "RoundVotes"]

Listener = Callable[[Event], None]


@dataclass
class RoundVotes:
    prevotes: dict[str, Vote] = field(default_factory=dict)
    precommits: dict[str, Vote] = field(default_factory=dict)


class Player:
    def __init__(
        self,
        timeline: Timeline,
        *,
        speed: float = 1.0,
        loop: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not speed > 0:
            raise ValueError("speed must be positive")
        self.tl = timeline
        self.speed = speed
        self.loop = loop and bool(timeline.events)
        self.laps = Laps(timeline)
        self.lap = 0
        self.clock = clock
        self.position = 0  # index of the next event to fire
        self.fired = 0
        first = timeline.first_height
        self.latest_height = (first - 1) if first is not None else 0
        self.height = self.latest_height + 1
        self.round = 0
        self.step = "RoundStepNewHeight"
        self.round_start_ns: int | None = None
        self.proposal_hash = ""
        self.votes: dict[int, RoundVotes] = {}  # round → votes of the current height
        self.listeners: list[Listener] = []
        self.finished = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        if not timeline.events:
            self.finished.set()

    @property
    def started(self) -> bool:
        return self._task is not None

    def add_listener(self, fn: Listener) -> None:
        self.listeners.append(fn)

    def remove_listener(self, fn: Listener) -> None:
        if fn in self.listeners:
            self.listeners.remove(fn)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="replay-player")

    async def stop(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        events = self.tl.events
        if not events:
            self.finished.set()
            return
        t0_rec = events[0].ts
        t0 = self.clock()
        while True:
            shift = self.lap * self.laps.span
            while self.position < len(events):
                due = t0 + (events[self.position].ts + shift - t0_rec) / 1e9 / self.speed
                wait = due - self.clock()
                if wait > 0:
                    await asyncio.sleep(wait)
                now_rec = t0_rec + int((self.clock() - t0) * self.speed * 1e9) - shift
                self._fire(events[self.position])  # it is due (whatever the float rounding of now_rec)
                while self.position < len(events) and events[self.position].ts <= now_rec:
                    self._fire(events[self.position])
                await asyncio.sleep(0)  # let the connections write what was fired
            if not self.loop:
                break
            self.lap += 1
            self.position = 0
        self.finished.set()

    # The recording's values at a (possibly looped) height.
    def block(self, height: int) -> Block | None:
        return self.laps.block(height)

    def commit(self, height: int) -> Commit | None:
        return self.laps.commit(height)

    def set_at(self, height: int) -> HeightSet:
        return self.tl.set_at(self.laps.base(height)[0])

    def proposer(self, height: int, round_: int) -> tuple[str, int]:
        return self.tl.proposer(self.laps.base(height)[0], round_)

    def _fire(self, recorded: Event) -> None:
        e = self.laps.event(recorded, self.lap)
        self.position += 1
        self.fired += 1
        self._apply(e)
        for fn in list(self.listeners):
            fn(e)

    def _apply(self, e: Event) -> None:
        if e.kind == "NewBlock":
            self.latest_height = e.height
            return
        if e.kind == "Vote":
            v = e.vote
            if v is not None and v.height == self.height:
                rv = self.votes.setdefault(v.round, RoundVotes())
                (rv.prevotes if v.type == 1 else rv.precommits)[v.validator] = v
            return
        if e.height != self.height:
            self.height, self.votes, self.proposal_hash = e.height, {}, ""
        if e.kind == "NewRound":
            self.round, self.round_start_ns = e.round, e.ts
            self.step = "RoundStepNewRound"
        elif e.kind == "NewRoundStep":
            self.round, self.step = e.round, e.step
        elif e.kind == "CompleteProposal" and e.block_id is not None:
            self.proposal_hash = e.block_id.hash
