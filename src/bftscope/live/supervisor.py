"""The networks a server follows: one follower per network, started, restarted and stopped with it.

:class:`NetworkSupervisor` runs inside the server's event loop. It starts a follower for each network at
start-up and when one is created, restarts it when its endpoints or thresholds change and stops it when the
network is deleted or the server shuts down. The follower comes from the network's chain family (the
``follower`` seam, :class:`Follower` below: docs/live.md "Follower"); its rows go to the store through a
:class:`~bftscope.ingest.livesink.StoreSink` on the run ``net:<name>`` and, through ``listen``, to the
network's :class:`~bftscope.live.feed.FeedHub`. A follower whose ``run`` ends in an error is restarted
after a capped backoff.

Every ``tick_s`` the supervisor reads each follower's status: the alert engine sees height, round and
endpoint states, the event rate is sampled, and the vote outcomes of heights now complete (below the last
committed one: a height's precommits arrive with the next block's last commit) are asked of the family for
the vote alerts — at the first look, those of the recent past as well (the uptime window, or as many heights
as misses alert), so a server restart or a new network starts from the network's state, not from nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol

from bftscope.ingest.live import Backoff
from bftscope.live.alerts import AlertEngine, AlertSink, Thresholds
from bftscope.live.endpoints import redact_text
from bftscope.live.feed import FeedHub

__all__ = ["Followed", "Follower", "FollowerFactory", "NetworkSpec", "NetworkSupervisor", "VoteOutcomes", "field_of",
           "observe"]

log = logging.getLogger("bftscope.live")


class Follower(Protocol):
    """What the supervisor needs of a family's follower (docs/live.md "Follower")."""

    async def run(self) -> None: ...

    async def stop(self) -> None: ...

    def status(self) -> Any: ...

    def listen(self, callback: Callable[[Any], None]) -> Any: ...


@dataclass(frozen=True)
class NetworkSpec:
    id: str
    name: str
    chain: str
    endpoints: tuple[str, ...]
    limits: Thresholds
    run: str


FollowerFactory = Callable[[NetworkSpec], Follower]
# (spec, from height, to height) → missed-votes rows of those heights (docs/live.md "Missed votes")
VoteOutcomes = Callable[[NetworkSpec, int, int], Sequence[Mapping[str, Any]]]


MAX_LOOKBACK = 1000  # heights of the past the vote alerts read when they first look at a network


def _lookback(t: Thresholds) -> int:
    """Heights enough to rebuild the vote alerts' state: the uptime window, or the misses that alert."""
    return min(MAX_LOOKBACK, max(t.uptime_window if t.uptime_percent is not None else 0, t.missed_votes or 0, 1))


async def observe(engine: AlertEngine, status: Any, evaluated: int | None,
                  outcomes: Callable[[int, int], Sequence[Mapping[str, Any]]] | None, now: float) -> int | None:
    """One look at a followed network for its alerts: the status (height, round, endpoints) and the vote outcomes
    of the heights completed since ``evaluated`` (read in a thread: they query the store). Returns the new
    ``evaluated``. Used by the server's supervisor and by ``bftscope watch``."""
    height, round_ = field_of(status, "height"), field_of(status, "round")
    endpoints = [(str(field_of(e, "url")), str(field_of(e, "state"))) for e in field_of(status, "endpoints", [])]
    engine.observe_status(height, round_, endpoints, now)
    if outcomes is None or height is None:
        return evaluated
    committed = field_of(status, "committed")  # a height's precommits come with the next block's last commit
    done = int(committed) - 1 if committed is not None else int(height) - 2
    if evaluated is None:  # first look (a new network, a server restart): the recent past too
        evaluated = max(0, done - _lookback(engine.limits))
    if done > evaluated:
        first, evaluated = evaluated + 1, done
        rows = await asyncio.to_thread(outcomes, first, done)
        engine.observe_votes(rows, now)
    return evaluated


def field_of(obj: Any, name: str, default: Any = None) -> Any:
    """``obj.name`` or ``obj[name]``: a status may be a dataclass or a mapping."""
    if isinstance(obj, Mapping):
        return obj.get(name, default)
    return getattr(obj, name, default)


@dataclass
class Followed:
    """One followed network: its follower, task, alert engine, feed and counters."""

    spec: NetworkSpec
    follower: Follower | None
    engine: AlertEngine
    feed: FeedHub
    state: str = "starting"  # starting | following | restarting | failed | stopped
    error: str | None = None
    restarts: int = 0
    task: asyncio.Task[None] | None = None
    evaluated: int | None = None  # the last height whose vote outcomes the alerts have seen
    samples: deque[tuple[float, int]] = field(default_factory=lambda: deque(maxlen=64))

    def status(self) -> Any:
        if self.follower is None:
            return None
        try:
            return self.follower.status()
        except Exception as exc:  # a follower bug must not break /v1/networks or /metrics
            self.error = redact_text(f"status: {type(exc).__name__}: {exc}")
            return None

    def events_per_s(self, window_s: float = 10.0) -> float | None:
        if len(self.samples) < 2:
            return None
        last_t, last_n = self.samples[-1]
        first = next((s for s in self.samples if last_t - s[0] <= window_s), self.samples[0])
        if first[0] >= last_t:
            first = self.samples[-2]
        return max(0.0, (last_n - first[1]) / (last_t - first[0])) if last_t > first[0] else None


class NetworkSupervisor:
    def __init__(self, factory: FollowerFactory, *, sinks: Sequence[AlertSink] = (),
                 vote_outcomes: VoteOutcomes | None = None, tick_s: float = 1.0, feed_batches: int = 256,
                 backoff: Backoff | None = None, clock: Callable[[], float] = time.time) -> None:  # fmt: skip
        self.factory = factory
        self.sinks = list(sinks)
        self.vote_outcomes = vote_outcomes
        self.tick_s = tick_s
        self.feed_batches = feed_batches
        self.backoff = backoff or Backoff(base=1.0, cap=60.0)
        self.clock = clock
        self.networks: dict[str, Followed] = {}
        self._ticker: asyncio.Task[None] | None = None

    async def start(self, specs: Sequence[NetworkSpec]) -> None:
        for spec in specs:
            await self.follow(spec)
        if self._ticker is None and self.tick_s > 0:
            self._ticker = asyncio.create_task(self._tick_forever(), name="networks:tick")

    async def follow(self, spec: NetworkSpec) -> Followed:
        """Start following ``spec``: a network followed already with other endpoints restarts; one whose only
        change is its thresholds keeps its follower (no reconnect, no observation gap) and is retuned."""
        old = self.networks.get(spec.id)
        if old is not None and (old.spec.name, old.spec.chain, old.spec.endpoints) == (spec.name, spec.chain,
                                                                                        spec.endpoints):  # fmt: skip
            old.spec = spec
            old.engine.retune(spec.limits)
            return old
        if old is not None:
            await self._stop(old, clear=True)
        loop = asyncio.get_running_loop()
        entry = Followed(spec, None, AlertEngine(spec.name, spec.limits, self.sinks, self.clock),
                         FeedHub(loop, self.feed_batches))  # fmt: skip
        if old is not None:
            entry.restarts = old.restarts
        self.networks[spec.id] = entry
        entry.task = asyncio.create_task(self._run(entry), name=f"network:{spec.name}")
        return entry

    async def unfollow(self, network_id: str) -> None:
        entry = self.networks.pop(network_id, None)
        if entry is not None:
            await self._stop(entry, clear=True)

    async def shutdown(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None
        for network_id in list(self.networks):
            entry = self.networks.pop(network_id)
            await self._stop(entry, clear=False)  # a restart picks the alerts up again from the state they are in

    def get(self, network_id: str) -> Followed | None:
        return self.networks.get(network_id)

    async def _run(self, entry: Followed) -> None:
        attempt = 0
        while True:
            try:
                follower = self.factory(entry.spec)
                follower.listen(entry.feed.publish)
                entry.follower, entry.state, entry.error = follower, "following", None
                await follower.run()
                entry.state = "stopped"
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                entry.error = redact_text(f"{type(exc).__name__}: {getattr(exc, 'message', None) or exc}")
                log.warning("network %s: follower failed (%s); restarting", entry.spec.name, entry.error)
            entry.state = "restarting"
            delay = self.backoff.delay(attempt)
            attempt += 1
            entry.restarts += 1
            await asyncio.sleep(delay)

    async def _stop(self, entry: Followed, *, clear: bool) -> None:
        if entry.follower is not None:
            try:
                await asyncio.wait_for(entry.follower.stop(), timeout=10)
            except Exception as exc:
                log.warning("network %s: stopping its follower failed: %s", entry.spec.name, redact_text(str(exc)))
        if entry.task is not None:
            entry.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await entry.task
        entry.state = "stopped"
        entry.feed.close()
        if clear:
            entry.engine.clear_all()

    async def _tick_forever(self) -> None:
        while True:
            await asyncio.sleep(self.tick_s)
            try:
                await self.tick()
            except Exception:  # one bad tick must not end the alerts for good
                log.exception("network supervisor: tick failed")

    async def tick(self) -> None:
        """One pass over every network: status → alerts and rates; completed heights → vote alerts."""
        now = self.clock()
        for entry in list(self.networks.values()):
            st = entry.status()
            if st is None:
                continue
            entry.samples.append((now, int(field_of(st, "events_total", 0) or 0)))
            outcomes = self.vote_outcomes
            entry.evaluated = await observe(
                entry.engine, st, entry.evaluated, None if outcomes is None else partial(outcomes, entry.spec), now
            )
