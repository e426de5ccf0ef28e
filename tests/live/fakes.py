"""A stand-in for a family's follower (docs/live.md "Follower"): rows are emitted by the test, status is set by it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass
class FakeFollower:
    name: str
    endpoints: list[str]
    sink: Any = None
    height: int | None = None
    round: int | None = 0
    node_height: int | None = None
    committed: int | None = None
    endpoint_state: str = "live"
    events_total: int = 0
    fail_with: Exception | None = None
    runs: int = 0
    stopped: bool = False
    listeners: list[Callable[[Any], None]] = field(default_factory=list)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        self.runs += 1
        if self.fail_with is not None:
            raise self.fail_with
        await self._stop.wait()

    async def stop(self) -> None:
        self.stopped = True
        self._stop.set()

    def listen(self, callback: Callable[[Any], None]) -> None:
        self.listeners.append(callback)

    def emit(self, rows: Sequence[Mapping[str, Any]]) -> None:
        if self.sink is not None:
            self.sink.write(self.endpoints[0], list(rows))
        self.events_total += len(rows)
        heights = [r["height"] for r in rows if r.get("height") is not None]
        if heights:
            self.height = max([*heights, self.height or 0])
        for cb in self.listeners:
            cb(list(rows))

    def status(self) -> dict[str, Any]:
        return {
            "height": self.height, "round": self.round, "step": "prevote", "step_since": 1.0,
            "node_height": self.node_height, "gaps": 1, "events_total": self.events_total, "duplicates": 2,
            "committed": self.committed,
            "endpoints": [{"url": u, "state": self.endpoint_state if i == 0 else "standby", "frames": 3, "events": 2,
                           "reconnects": 4, "errors": 1, "last_error": f"lost {u}", "active": i == 0}
                          for i, u in enumerate(self.endpoints)],
        }  # fmt: skip


def vote(height: int, validator: str = "AB" * 20, kind: str = "vote_added") -> dict[str, Any]:
    return {"ts": height * 10**9, "kind": kind, "height": height, "round": 0, "vote_type": "prevote",
            "validator": validator, "validator_index": 0, "block_hash": None}  # fmt: skip
