"""What a network's follower has already written, so that nothing is written twice: a vote re-sent by a second
endpoint after a failover, a commit signature met again in ``/commit`` and in the next block's ``last_commit``,
a height backfilled that the stream had partly shown.

Keys are per kind: votes and commit signatures by (height, round, type, validator); steps by (height, round,
step); block completions by (height, round); committed blocks by height; validator updates by (height,
validator, extra). Observation gaps are never duplicates. Memory stays bounded: keys of heights more than
``keep_heights`` below the highest seen are forgotten (a frame that old is then written again; ``forgotten``
counts the heights dropped).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from typing import Any

from bftscope.families.cometbft import kinds

__all__ = ["Seen", "row_key"]

_KEYED = {kinds.VOTE_ADDED, kinds.COMMIT_SIG, kinds.STEP, kinds.BLOCK_COMPLETE, kinds.BLOCK_COMMITTED,
          kinds.VALIDATOR_UPDATE}  # fmt: skip


def row_key(row: Mapping[str, Any]) -> tuple[Any, ...] | None:
    """The identity of a row for de-duplication; ``None``: always written. Its strings are interned: every
    frame decodes addresses and step names anew, and ~1,000 heights of keys kept a copy per vote."""
    key = _key(row)
    if key is None:
        return None
    return tuple(sys.intern(v) if type(v) is str else v for v in key)


def _key(row: Mapping[str, Any]) -> tuple[Any, ...] | None:
    kind = row.get("kind")
    if kind not in _KEYED:
        return None
    if kind == kinds.VOTE_ADDED:
        return (kind, row.get("round"), row.get("vote_type"), row.get("validator"))
    if kind == kinds.COMMIT_SIG:  # an absent signature has no address: its index names it
        return (kind, row.get("round"), row.get("validator_index"))
    if kind == kinds.STEP:
        return (kind, row.get("round"), row.get("step"))
    if kind == kinds.BLOCK_COMPLETE:
        return (kind, row.get("round"))
    if kind == kinds.VALIDATOR_UPDATE:
        return (kind, row.get("validator"), row.get("extra"))
    return (kind,)


class Seen:
    # 1,000: a re-sent or backfilled frame is near the tip (backfill is bounded by --max-backfill, 100 by default;
    # a resumed watch preloads RESUME_HEIGHTS = 1,000). 10,000 kept ~25 keys a height for every network: 20
    # networks followed at 12 heights/s grew 1.6 MiB/s for 13 minutes (bench/live_follow_bench.py).
    def __init__(self, keep_heights: int = 1_000) -> None:
        self.keep_heights = keep_heights
        self.duplicates = 0
        self.forgotten = 0
        self._by_height: dict[int | None, set[tuple[Any, ...]]] = {}
        self._top: int | None = None

    def fresh(self, rows: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
        """The rows not written before (and within ``rows`` only the first of equals), now marked written."""
        out = []
        for row in rows:
            key = row_key(row)
            if key is not None:
                height = row.get("height")
                keys = self._by_height.setdefault(height, set())
                if key in keys:
                    self.duplicates += 1
                    continue
                keys.add(key)
                if isinstance(height, int) and (self._top is None or height > self._top):
                    self._top = height
                    self._forget()
            out.append(row)
        return out

    def preload(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Mark rows already in the store (a run resumed by a new ``watch``) as written."""
        self.fresh(rows)
        self.duplicates = 0

    def _forget(self) -> None:
        assert self._top is not None
        floor = self._top - self.keep_heights
        old = [h for h in self._by_height if h is not None and h < floor]
        if len(old) > 64 or (old and len(self._by_height) > 2 * self.keep_heights):
            for h in old:
                del self._by_height[h]
            self.forgotten += len(old)
