"""Backfill: what the RPC can give back for heights the stream did not show, and the ``observation_gap`` row.

For each committed height of a gap (at most ``max_heights``, the most recent ones; the rest are named in the
row as not refilled): ``/block`` (the ``block_committed`` row and the previous height's ``commit_sig`` rows from
its ``last_commit``), ``/commit`` (that height's ``commit_sig`` rows) and ``/validators`` (the set, stored through
the follower's callback). Prevotes and the precommits of rounds that did not commit cannot be asked for: those
heights stay unknown, and the gap row says so for ``height`` … ``extra.to_height``.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from bftscope.families.cometbft.live.decoder import Malformed, Row, block_rows, commit_rows
from bftscope.families.cometbft.live.rpc import RpcClient, RpcError, ValidatorSet
from bftscope.model import OBSERVATION_GAP

__all__ = ["Backfiller", "GapSpan"]

PARTS = ("block", "commit", "validators")


@dataclass
class GapSpan:
    """Time (epoch s) and heights not observed. ``first``…``last``: the heights whose events may be missing
    (``None`` when no height was known yet) — from the last committed height seen, whose late precommits can
    still arrive, to the one in progress; ``refill_from``…``refill_to``: the committed ones not seen (backfillable)."""

    label: str  # the endpoint whose observation broke: the gap row goes on its node
    start: float
    end: float
    reason: str
    first: int | None = None
    last: int | None = None
    refill_from: int | None = None  # the first committed height not seen (None: ``first``)
    refill_to: int | None = None


class Backfiller:
    def __init__(
        self,
        *,
        max_heights: int,
        write: Callable[[str, list[Row]], None],
        on_set: Callable[[ValidatorSet], Awaitable[None]],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.max_heights = max_heights
        self.refilled_heights = 0
        self.not_refilled_heights = 0
        self.errors: Counter[str] = Counter()
        self._write, self._on_set, self._clock = write, on_set, clock

    def errors_of(self, part: str) -> int:
        return sum(n for key, n in self.errors.items() if key.split()[0] == part)

    async def fill(self, gap: GapSpan, rpc: RpcClient | None) -> Row:
        """Refill what ``rpc`` can give for ``gap`` and return its ``observation_gap`` row (not written)."""
        heights: list[int] = []
        not_refilled: list[int] | None = None
        start = gap.refill_from if gap.refill_from is not None else gap.first
        if start is not None and gap.refill_to is not None and gap.refill_to >= start:
            heights = list(range(max(start, gap.refill_to - self.max_heights + 1), gap.refill_to + 1))
            if heights[0] > start:
                not_refilled = [start, heights[0] - 1]
                self.not_refilled_heights += heights[0] - start
        got: Counter[str] = Counter()
        errors: Counter[str] = Counter()
        for h in heights if rpc is not None else []:
            assert rpc is not None
            for part in PARTS:
                try:
                    await self._part(rpc, part, h, gap.label)
                    got[part] += 1
                except (RpcError, Malformed) as exc:
                    errors[part] += 1
                    self.errors[f"{part} {getattr(exc, 'kind', 'malformed')}"] += 1
            self.refilled_heights += 1
        if rpc is None and heights:
            not_refilled, heights = [heights[0], heights[-1]], []
        extra: dict[str, Any] = {
            "end_ns": int(gap.end * 1e9), "reason": gap.reason, "to_height": gap.last,
            "refilled": [p for p in PARTS if heights and got[p] == len(heights)],
            "refilled_heights": [heights[0], heights[-1]] if heights else None,
            "not_refilled": not_refilled,
        }  # fmt: skip
        if errors:
            extra["errors"] = dict(errors)
        return {"ts": int(gap.start * 1e9), "kind": OBSERVATION_GAP, "height": gap.first,
                "extra": json.dumps(extra, separators=(",", ":"))}  # fmt: skip

    async def _part(self, rpc: RpcClient, part: str, height: int, label: str) -> None:
        now = int(self._clock() * 1e9)
        if part == "block":
            self._write(label, block_rows(await rpc.block(height), now, "backfill"))
        elif part == "commit":
            self._write(label, commit_rows(await rpc.commit(height), now, "commit"))
        else:
            await self._on_set(await rpc.validators(height))
