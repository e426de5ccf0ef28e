"""What ``bftscope top`` knows about a network, without any UI: fed batches of event rows in the live shape
(docs/live.md "Event rows from the RPC stream") plus the validator set and the source's connection state.

It keeps the current height/round/step and when the step began; per validator of the set, its prevote and
precommit in the current round; voting-power tallies against +2/3; the recent heights (duration, rounds,
proposer); and each validator's vote-arrival delay (its vote after the round's first vote of that type, median
over recent heights).

What it cannot know it says is unknown, never missing: a vote not seen in a round the monitor did not watch
from its start with the connection up (started mid-round, reconnected, an ``observation_gap``) is
``unknown``; only in a round watched whole is a vote not yet seen ``waiting``.
"""

from __future__ import annotations

import json
import statistics
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bftscope.families.cometbft.kinds import STEPS
from bftscope.families.cometbft.top.view import (
    HeightLine,
    Mark,
    SlowLine,
    SourceStatus,
    Tally,
    TopView,
    ValidatorLike,
    ValidatorLine,
)

__all__ = ["TopState"]

VOTE_TYPES = ("prevote", "precommit")
# Steps that open a round: a round whose opening the monitor saw (connected) is "watched whole".
_OPENING = ("new_height", "new_round", "propose")
_STEP_ORDER = {s: i for i, s in enumerate(STEPS)}


@dataclass
class _Round:
    watched: bool = False  # its opening step was seen while connected, and the connection held since
    opened: bool = False  # an opening step was seen
    votes: dict[str, dict[str, tuple[int | None, str | None]]] = field(
        default_factory=lambda: {t: {} for t in VOTE_TYPES}
    )  # type → address → (receipt ts, block hash or None for nil); first receipt wins
    first_ts: dict[str, int] = field(default_factory=dict)  # type → receipt ts of the round's first vote
    proposer: str | None = None


@dataclass
class _Height:
    start_ts: int | None = None
    commit_ts: int | None = None
    commit_round: int | None = None
    proposer: str | None = None  # from block_committed (the header's proposer)
    committed: bool = False
    gap: bool = False
    rounds: dict[int, _Round] = field(default_factory=dict)


class TopState:
    """The model behind ``bftscope top``; :meth:`feed` never raises on a bad row — it counts it in ``skipped``."""

    def __init__(
        self,
        validators: Sequence[ValidatorLike],
        *,
        names: Mapping[str, str] | None = None,
        recent: int = 10,
        delay_window: int = 20,
        slowest: int = 5,
    ) -> None:
        self.names = {a.upper(): n for a, n in (names or {}).items()}
        self.recent_n, self.delay_window, self.slowest_n = recent, delay_window, slowest
        self.power: dict[str, int] = {}
        self.set_validators(validators)
        self.status = SourceStatus()
        self.height: int | None = None
        self.round: int | None = None
        self.step: str | None = None
        self.step_ts: int | None = None
        self.heights: dict[int, _Height] = {}
        self.pending_updates: dict[int, dict[str, int]] = {}  # effective height → address → new power
        self.rows = 0
        self.skipped: Counter[str] = Counter()

    # --- inputs ------------------------------------------------------------------------------------

    def set_validators(self, validators: Sequence[ValidatorLike]) -> None:
        """Replace the validator set (in set order); an empty set is ignored (a failed fetch never wipes it)."""
        if validators:
            self.power = {v.address.upper(): int(v.power) for v in sorted(validators, key=lambda v: v.index)}

    def set_status(self, status: SourceStatus) -> None:
        if status.connection != "connected" or status.reconnects != self.status.reconnects:
            self._unwatch_open()  # what happens while away is not seen: nothing still open is watched whole
        self.status = status

    def _unwatch_open(self) -> None:
        """Rounds of heights not yet committed (the current one and any after) lose "watched whole"; a committed
        height's rounds were watched to their end and keep it."""
        for height, h in self.heights.items():
            if self.height is None or height >= self.height or not (h.committed or h.commit_ts is not None):
                for r in h.rounds.values():
                    r.watched = False

    def feed(self, rows: Iterable[Mapping[str, Any]]) -> None:
        for row in rows:
            self.rows += 1
            try:
                reason = self._apply(row)
            except (TypeError, ValueError, KeyError, AttributeError):
                reason = "malformed row"
            if reason:
                self.skipped[reason] += 1
        self._prune()

    def _apply(self, row: Mapping[str, Any]) -> str | None:
        kind = row.get("kind")
        if kind == "observation_gap":
            return self._gap(row)
        if kind == "validator_update":
            return self._validator_update(row)
        height, rnd = row.get("height"), row.get("round")
        if not isinstance(height, int) or height < 0:
            return f"{kind}: no height" if kind in ("step", "vote_added", "commit_sig", "block_committed") else None
        if kind == "step":
            return self._step(height, rnd, row)
        if kind in ("vote_added", "commit_sig"):
            return self._vote(height, rnd, row)
        if kind == "block_committed":
            h = self._height(height)
            h.committed = True
            h.proposer = _hex(row.get("validator")) or h.proposer
            if h.commit_ts is None:
                h.commit_ts = _int(row.get("ts"))
        return None

    def _height(self, height: int) -> _Height:
        h = self.heights.get(height)
        if h is None:
            h = self.heights[height] = _Height()
        return h

    def _round(self, height: int, rnd: int) -> _Round:
        h = self._height(height)
        r = h.rounds.get(rnd)
        if r is None:
            r = h.rounds[rnd] = _Round()
        return r

    def _step(self, height: int, rnd: Any, row: Mapping[str, Any]) -> str | None:
        step = row.get("step")
        if not isinstance(rnd, int) or rnd < 0 or not isinstance(step, str) or step not in _STEP_ORDER:
            return "step: bad round or step"
        ts = _int(row.get("ts"))
        h = self._height(height)
        if h.start_ts is None and step in _OPENING and rnd == 0:
            h.start_ts = ts
        r = self._round(height, rnd)
        if step in _OPENING and not r.opened:
            r.opened = True
            r.watched = self.status.connection == "connected" and not h.gap
        if step == "new_round" and row.get("validator"):
            r.proposer = _hex(row.get("validator"))
        if step == "commit":
            h.commit_ts, h.commit_round = h.commit_ts or ts, rnd
        key = (height, rnd, _STEP_ORDER[step])
        if self.height is None or key >= (self.height, self.round or 0, _STEP_ORDER.get(self.step or "", 0)):
            if self.height is not None and height > self.height:
                self._apply_updates(height)
            self.height, self.round, self.step, self.step_ts = height, rnd, step, ts
        return None

    def _vote(self, height: int, rnd: Any, row: Mapping[str, Any]) -> str | None:
        vtype, addr = row.get("vote_type"), _hex(row.get("validator"))
        if not isinstance(rnd, int) or rnd < 0 or vtype not in VOTE_TYPES or not addr:
            return f"{row.get('kind')}: bad round, type or validator"
        block = row.get("block_hash") or None
        arrival: int | None = _int(row.get("ts"))
        if row.get("kind") == "commit_sig":  # from the RPC after the fact: a status, not an arrival time
            flag = _extra(row).get("flag")
            if flag not in (2, 3):
                return None  # 1 = absent from the commit: the commit says nothing was signed
            block, arrival = (block if flag == 2 else None), None
        r = self._round(height, rnd)
        seen = r.votes[vtype]
        if addr in seen:
            return None  # the first receipt is the arrival; a re-delivery changes nothing
        seen[addr] = (arrival, block)
        if arrival is not None and vtype not in r.first_ts:
            r.first_ts[vtype] = arrival
        return None

    def _gap(self, row: Mapping[str, Any]) -> str | None:
        extra = _extra(row)
        first = row.get("height")
        last = extra.get("to_height", first)
        if isinstance(first, int) and isinstance(last, int) and 0 <= last - first < 100_000:
            for hh in range(first, last + 1):
                h = self._height(hh)
                h.gap = True
                for r in h.rounds.values():
                    r.watched = False
        else:  # a gap with no heights (the runner's): whatever is open was not watched whole
            self._unwatch_open()
        return None

    def _validator_update(self, row: Mapping[str, Any]) -> str | None:
        addr, power = _hex(row.get("validator")), _extra(row).get("power")
        if not addr or not isinstance(power, int) or power < 0:
            return "validator_update: bad validator or power"
        at = row.get("height")
        if isinstance(at, int) and self.height is not None and at > self.height:
            self.pending_updates.setdefault(at, {})[addr] = power
        else:
            self._set_power(addr, power)
        return None

    def _apply_updates(self, height: int) -> None:
        for at in sorted(h for h in self.pending_updates if h <= height):
            for addr, power in self.pending_updates.pop(at).items():
                self._set_power(addr, power)

    def _set_power(self, addr: str, power: int) -> None:
        if power == 0:
            self.power.pop(addr, None)
        else:
            self.power[addr] = power

    def _prune(self) -> None:
        if self.height is None:
            return
        keep = self.height - max(self.recent_n, self.delay_window) - 2
        for h in [h for h in self.heights if h < keep]:
            del self.heights[h]

    # --- the view ----------------------------------------------------------------------------------

    def name(self, address: str) -> str:
        return self.names.get(address, address)

    def view(self, now_ns: int) -> TopView:
        delays = self._delays()
        validators = [
            ValidatorLine(addr, self.name(addr), power, self._mark(addr, "prevote"), self._mark(addr, "precommit"),
                          _median_ms(delays.get(addr)))
            for addr, power in self.power.items()
        ]  # fmt: skip
        slow = sorted(
            (SlowLine(a, self.name(a), m, len(delays[a])) for a in delays if (m := _median_ms(delays[a])) is not None),
            key=lambda s: (-s.delay_ms, s.address),
        )
        age = max(0.0, (now_ns - self.step_ts) / 1e9) if self.step_ts is not None else None
        return TopView(
            height=self.height, round=self.round, step=self.step, step_age_s=age,
            connection=self.status.connection, validators=validators,
            tallies=[self._tally(t) for t in VOTE_TYPES], recent=self._recent(), slowest=slow[: self.slowest_n],
            rows=self.rows, skipped=dict(self.skipped),
        )  # fmt: skip

    def _current(self) -> _Round | None:
        if self.height is None or self.round is None:
            return None
        h = self.heights.get(self.height)
        return h.rounds.get(self.round) if h else None

    def _mark(self, addr: str, vtype: str) -> Mark:
        r = self._current()
        vote = r.votes[vtype].get(addr) if r else None
        if vote is not None:
            return "block" if vote[1] else "nil"
        if r is not None and r.watched and self.status.connection == "connected":
            return "waiting"
        return "unknown"

    def _tally(self, vtype: str) -> Tally:
        total = sum(self.power.values())
        r = self._current()
        by_block: Counter[str] = Counter()
        nil = 0
        for addr, (_, block) in r.votes[vtype].items() if r else ():
            p = self.power.get(addr, 0)
            if block:
                by_block[block] += p
            else:
                nil += p
        best = max(by_block.values(), default=0)
        return Tally(vtype, best, nil, sum(by_block.values()) + nil, total, total * 2 // 3 + 1)

    def _recent(self) -> list[HeightLine]:
        lines = []
        for height in sorted(self.heights, reverse=True)[: self.recent_n]:
            h = self.heights[height]
            watched = bool(h.rounds) and h.rounds.get(0) is not None and h.rounds[0].watched and not h.gap
            rounds = (max(h.rounds) + 1) if watched else None
            duration = (h.commit_ts - h.start_ts) / 1e6 if h.commit_ts and h.start_ts else None
            proposer = h.proposer or (h.rounds[h.commit_round].proposer if h.commit_round in h.rounds else None)
            lines.append(HeightLine(height, duration, rounds, self.name(proposer) if proposer else None,
                                    h.committed or h.commit_ts is not None, h.gap))  # fmt: skip
        return lines

    def _delays(self) -> dict[str, list[int]]:
        """address → its arrival delays (ns) in rounds watched whole, over the last ``delay_window`` heights."""
        out: dict[str, list[int]] = {}
        for height in sorted(self.heights, reverse=True)[: self.delay_window]:
            for r in self.heights[height].rounds.values():
                if not r.watched:
                    continue  # the round's first vote may have gone unseen: its delays would be wrong
                for vtype, seen in r.votes.items():
                    first = r.first_ts.get(vtype)
                    for addr, (ts, _) in seen.items():
                        if ts is not None and first is not None:
                            out.setdefault(addr, []).append(ts - first)
        return out


def _median_ms(values: list[int] | None) -> float | None:
    return statistics.median(values) / 1e6 if values else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _hex(value: Any) -> str | None:
    return value.upper() if isinstance(value, str) and value else None


def _extra(row: Mapping[str, Any]) -> dict[str, Any]:
    extra = row.get("extra")
    if isinstance(extra, Mapping):
        return dict(extra)
    if isinstance(extra, str) and extra:
        try:
            value = json.loads(extra)
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}
    return {}
