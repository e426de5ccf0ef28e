"""A stored run's node as ``bftscope top`` rows: its events in time order, in the live shape of docs/live.md.

Live rows come from a node's RPC, which reports each vote once, when the node adds it. A node's WAL records every
copy it received (``msg_received``/``msg_internal`` with ``msg_type`` vote, one per sending peer); the first copy of
each (height, round, type, validator) is the node adding it, so it becomes one ``vote_added`` row and later copies
are dropped (so are vote rows that do not name the voter: some log lines only fingerprint it). Rows already in the
live shape (``vote_added``, ``commit_sig``, steps, commits, gaps) pass through.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from typing import Any

from bftscope.families.cometbft.top.source import RowBatch
from bftscope.families.cometbft.top.view import SourceStatus, ValidatorLike
from bftscope.families.cometbft.validators.validator import Validator
from bftscope.store.base import Store

__all__ = ["RecordedSource", "live_rows", "stored_validators"]

_COLUMNS = ("ts", "kind", "height", "round", "step", "vote_type", "msg_type", "validator", "validator_index",
            "block_hash", "signer_ts", "extra")  # fmt: skip
_PASS = ("step", "block_complete", "block_committed", "vote_added", "commit_sig", "validator_update",
         "observation_gap")  # fmt: skip
_ROWS = f"""
SELECT {", ".join(_COLUMNS)} FROM events
WHERE run_id = :run AND node = :node
  AND (kind IN ({", ".join(f"'{k}'" for k in _PASS)})
       OR (kind IN ('msg_received', 'msg_internal') AND msg_type = 'vote'))
ORDER BY ts, seq
"""


def live_rows(store: Store, run_id: int, node: int) -> Iterator[dict[str, Any]]:
    """Node ``node`` of run ``run_id`` as live rows, in time order (see the module docstring)."""
    added: set[tuple[int, int, str, str]] = set()
    for values in store.query(_ROWS, {"run": run_id, "node": node}):
        row = dict(zip(_COLUMNS, values, strict=True))
        if row["kind"] in ("msg_received", "msg_internal", "vote_added"):
            if row["validator"] is None:
                continue  # a log line that does not name the voter: nothing the view can attribute
            key = (row["height"], row["round"], row["vote_type"], row["validator"])
            if key in added:
                continue
            added.add(key)
            if row["kind"] != "vote_added":
                row.update(kind="vote_added", extra='{"source":"wal"}')
        yield row


def stored_validators(store: Store, run_id: int) -> list[Validator]:
    """The validators a stored run's votes name, by their index; their power is not in the events, so each counts
    1 (the view says so). Used when no validator-set history is stored for the run."""
    rows = store.query(
        "SELECT validator, min(validator_index) FROM events WHERE run_id = :run AND msg_type = 'vote'"
        " AND validator IS NOT NULL AND validator_index IS NOT NULL GROUP BY validator ORDER BY 2, 1",
        {"run": run_id},
    )
    return [Validator(addr, 1, None, idx) for addr, idx in rows]


class RecordedSource:
    """Replays ``rows`` (a stored node's live rows) at ``speed`` times the recorded pace (0 = as fast as possible),
    in batches of ``tick_s`` of recorded time. Its clock is the recording's: the time of the last row given."""

    def __init__(
        self,
        rows: Sequence[Mapping[str, Any]],
        validators: Sequence[ValidatorLike],
        *,
        network: str,
        endpoint: str,
        names: Mapping[str, str] | None = None,
        note: str = "",
        speed: float = 1.0,
        tick_s: float = 0.1,
        sleep: Callable[[float], Any] = asyncio.sleep,
    ) -> None:
        self.rows, self._validators, self._names = list(rows), list(validators), dict(names or {})
        self.network, self.endpoint, self.speed, self.tick_ns = network, endpoint, speed, int(tick_s * 1e9)
        self._sleep, self.note = sleep, note
        self._given = 0
        self._clock = next((r["ts"] for r in self.rows if isinstance(r.get("ts"), int)), time.time_ns())
        self._closed = False

    async def batches(self) -> AsyncIterator[RowBatch]:
        i = 0
        while i < len(self.rows) and not self._closed:
            end = self._clock + self.tick_ns
            j = i
            while j < len(self.rows) and (self.rows[j].get("ts") or 0) < end:
                j += 1
            if self.speed > 0:
                await self._sleep(self.tick_ns / 1e9 / self.speed)
            self._clock = end if j < len(self.rows) else max(self._clock, self.rows[-1].get("ts") or 0)
            batch, i = self.rows[i:j], j
            self._given += len(batch)
            if batch:
                yield batch

    def status(self) -> SourceStatus:
        ended = self._given >= len(self.rows)
        detail = "; ".join(d for d in ("end of recording" if ended else "replaying a stored run", self.note) if d)
        return SourceStatus("unknown" if ended else "connected", self.network, self.endpoint, frames=self._given,
                            detail=detail)  # fmt: skip

    def validators(self) -> Sequence[ValidatorLike]:
        return self._validators

    def names(self) -> Mapping[str, str]:
        return self._names

    def now_ns(self) -> int:
        return self._clock

    async def close(self) -> None:
        self._closed = True
