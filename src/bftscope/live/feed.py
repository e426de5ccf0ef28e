"""A network's live feed: the batches of rows its follower writes, fanned out to subscribers with filters.

Each subscriber has a bounded queue of batches. Publishing never waits: a subscriber whose queue is full
is cut off (its queue emptied and marked overflowed, so the websocket route can close it with a reason)
and counted in :attr:`FeedHub.overflows` — a slow client never slows the follower or the other clients.
The follower may call :meth:`FeedHub.publish` from another thread; the rows then reach the queues on the
hub's event loop.
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bftscope.errors import InputError

__all__ = ["FeedFilter", "FeedHub", "Subscription", "as_rows"]

_HEX = re.compile(r"^[0-9A-Fa-f]{1,128}$")
MAX_KINDS = 32


@dataclass(frozen=True)
class FeedFilter:
    """Which rows a subscriber wants: kinds (empty: all), one validator (upper hex), heights from."""

    kinds: frozenset[str] = frozenset()
    validator: str | None = None
    from_height: int | None = None

    @classmethod
    def parse(cls, kinds: str | None, validator: str | None, from_height: str | None,
              known: Collection[str]) -> FeedFilter:  # fmt: skip
        """From query parameters; :class:`InputError` naming the bad one."""
        wanted: set[str] = set()
        if kinds is not None:
            wanted = {k.strip() for k in kinds.split(",")}
            if "" in wanted or len(wanted) > MAX_KINDS:
                raise InputError(f"kinds: a comma-separated list of at most {MAX_KINDS} event kinds")
            if unknown := sorted(wanted - set(known)):
                raise InputError(f"kinds: unknown kind {unknown[0][:64]!r}")
        if validator is not None and not _HEX.match(validator):
            raise InputError("validator: a hex address")
        height = None
        if from_height is not None:
            if not from_height.isdigit() or len(from_height) > 19:
                raise InputError("from_height: a non-negative whole number")
            height = int(from_height)
        return cls(frozenset(wanted), validator.upper() if validator else None, height)

    def keep(self, row: Mapping[str, Any]) -> bool:
        if self.kinds and row.get("kind") not in self.kinds:
            return False
        if self.validator is not None and str(row.get("validator") or "").upper() != self.validator:
            return False
        h = row.get("height")
        return self.from_height is None or h is None or h >= self.from_height


@dataclass
class Subscription:
    filter: FeedFilter
    queue: asyncio.Queue[list[dict[str, Any]] | None]
    overflowed: bool = False
    rows: int = 0

    async def next(self) -> list[dict[str, Any]] | None:
        """The next batch, or None once the subscriber was cut off for being too slow."""
        return await self.queue.get()


@dataclass
class FeedHub:
    """The subscribers of one network's feed."""

    loop: asyncio.AbstractEventLoop
    max_batches: int = 256
    subscribers: list[Subscription] = field(default_factory=list)
    overflows: int = 0
    published: int = 0
    _thread: int = field(default_factory=threading.get_ident)

    def subscribe(self, flt: FeedFilter) -> Subscription:
        sub = Subscription(flt, asyncio.Queue(maxsize=self.max_batches + 1))  # +1: room for the cut-off mark
        self.subscribers.append(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        if sub in self.subscribers:
            self.subscribers.remove(sub)

    def close(self) -> None:
        """End every subscription (the network stopped being followed)."""
        for sub in list(self.subscribers):
            sub.queue.put_nowait(None)
        self.subscribers.clear()

    def publish(self, rows: Any) -> None:
        """Hand a batch (mappings or an Arrow table) to every subscriber; safe from any thread."""
        if threading.get_ident() == self._thread:
            self._publish(rows)
        else:
            self.loop.call_soon_threadsafe(self._publish, rows)

    def _publish(self, rows: Any) -> None:
        if not self.subscribers:
            return
        batch = as_rows(rows)
        self.published += len(batch)
        for sub in list(self.subscribers):
            kept = [r for r in batch if sub.filter.keep(r)]
            if not kept:
                continue
            if sub.queue.qsize() >= self.max_batches:
                self._cut(sub)
                continue
            sub.queue.put_nowait(kept)
            sub.rows += len(kept)

    def _cut(self, sub: Subscription) -> None:
        while not sub.queue.empty():
            sub.queue.get_nowait()
        sub.overflowed = True
        sub.queue.put_nowait(None)
        self.unsubscribe(sub)
        self.overflows += 1


def as_rows(rows: Any) -> list[dict[str, Any]]:
    """A batch as JSON-ready dicts without their null columns."""
    if hasattr(rows, "to_pylist"):  # an Arrow table
        rows = rows.to_pylist()
    out = []
    for r in rows if isinstance(rows, Sequence) else list(rows):
        out.append({k: v for k, v in dict(r).items() if v is not None})
    return out
