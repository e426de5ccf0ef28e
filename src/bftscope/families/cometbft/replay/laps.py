"""Looping a recording (``--at-end loop``): lap ``k`` plays it again with every height moved up by ``k × N`` (``N``
the recording's blocks) and every time by ``k × span`` (its duration plus one block interval), so a follower sees a
chain that keeps growing. Block ids, signatures, proposers and validator priorities are those of the recorded
height a looped one stands for; the first block of a lap points back to the last block of the previous lap.
"""

from __future__ import annotations

from dataclasses import replace

from bftscope.families.cometbft.replay.model import Block, Commit, CommitSig, Event, Vote
from bftscope.families.cometbft.replay.timeline import Timeline

__all__ = ["Laps"]


class Laps:
    def __init__(self, tl: Timeline) -> None:
        self.tl = tl
        self.first = tl.first_height or tl.initial_height
        self.n = max(1, len(tl.blocks))
        span = tl.events[-1].ts - tl.events[0].ts if tl.events else 0
        self.span = span + span // self.n

    def base(self, height: int) -> tuple[int, int]:
        """The recorded height a (possibly looped) height stands for, and its lap."""
        if height < self.first:
            return height, 0
        k, i = divmod(height - self.first, self.n)
        return self.first + i, k

    def event(self, e: Event, k: int) -> Event:
        if k == 0:
            return e
        dh, dt = k * self.n, k * self.span
        vote = self._vote(e.vote, dh, dt) if e.vote is not None else None
        return replace(e, ts=e.ts + dt, height=e.height + dh, vote=vote)

    @staticmethod
    def _vote(v: Vote, dh: int, dt: int) -> Vote:
        return replace(v, height=v.height + dh, timestamp_ns=None if v.timestamp_ns is None else v.timestamp_ns + dt)

    def commit(self, height: int) -> Commit | None:
        h, k = self.base(height)
        c = self.tl.commits.get(h)
        if c is None or k == 0:
            return c
        dt = k * self.span
        sigs = tuple(
            s if s.timestamp_ns is None else CommitSig(s.flag, s.validator, s.timestamp_ns + dt, s.signature)
            for s in c.sigs
        )
        return replace(c, height=height, sigs=sigs)

    def block(self, height: int) -> Block | None:
        h, k = self.base(height)
        b = self.tl.blocks.get(h)
        if b is None or k == 0:
            return b
        last_commit = self.commit(height - 1)
        last = self.tl.blocks.get(self.base(height - 1)[0])
        time_ns = b.time_ns + k * self.span
        if h == self.first and last is not None:  # the recorded first block has the genesis time: not after the lap
            time_ns = last.time_ns + (k - 1) * self.span + self.span // (self.n + 1)
        return replace(
            b, height=height, time_ns=time_ns, last_commit=last_commit,
            last_block_id=last.block_id if last is not None else b.last_block_id,
        )  # fmt: skip
