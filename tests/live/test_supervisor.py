"""The network supervisor: a follower per network, restarted and stopped with it; feeds; alerts from status."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from bftscope.errors import InputError
from bftscope.ingest.live import Backoff
from bftscope.live.alerts import AlertEvent, Thresholds
from bftscope.live.feed import FeedFilter
from bftscope.live.supervisor import NetworkSpec, NetworkSupervisor
from tests.live.fakes import FakeFollower, vote

pytestmark = pytest.mark.anyio

KINDS = ("vote_added", "step", "block_committed")


def spec(name: str = "n1", endpoints: tuple[str, ...] = ("http://127.0.0.1:1",), **limits: Any) -> NetworkSpec:
    return NetworkSpec(f"id-{name}", name, "cometbft", endpoints, Thresholds(**limits), f"net:{name}")


class Made:
    def __init__(self, fail: Exception | None = None) -> None:
        self.followers: list[FakeFollower] = []
        self.fail = fail

    def __call__(self, s: NetworkSpec) -> FakeFollower:
        f = FakeFollower(s.name, list(s.endpoints), fail_with=self.fail if not self.followers else None)
        self.followers.append(f)
        return f


class Recorder:
    def __init__(self) -> None:
        self.events: list[AlertEvent] = []

    def deliver(self, event: AlertEvent) -> None:
        self.events.append(event)


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_follow_restart_and_stop() -> None:
    made = Made()
    sup = NetworkSupervisor(made, tick_s=0)
    await sup.start([spec("a"), spec("b")])
    await settle()
    assert [f.name for f in made.followers] == ["a", "b"] and all(f.runs == 1 for f in made.followers)
    assert sup.networks["id-a"].state == "following"
    await sup.follow(spec("a", ("http://127.0.0.1:2",)))  # new endpoints: the old follower stops, a new one runs
    await settle()
    assert made.followers[0].stopped and made.followers[2].endpoints == ["http://127.0.0.1:2"]
    same = sup.networks["id-b"]
    await sup.follow(spec("b", round_escalation=9))  # thresholds only: the follower goes on, retuned
    assert sup.networks["id-b"] is same and same.engine.limits.round_escalation == 9 and not made.followers[1].stopped
    await sup.unfollow("id-b")
    assert made.followers[1].stopped and "id-b" not in sup.networks
    await sup.shutdown()
    assert made.followers[2].stopped and sup.networks == {}


async def test_a_failing_follower_is_restarted_with_the_error_kept() -> None:
    made = Made(fail=RuntimeError("cannot reach https://u:pw@rpc.example/"))
    sup = NetworkSupervisor(made, tick_s=0, backoff=Backoff(base=0.0, cap=0.0))
    await sup.start([spec("a")])
    await settle()
    entry = sup.networks["id-a"]
    assert len(made.followers) == 2 and entry.restarts == 1 and entry.state == "following"
    await sup.shutdown()


async def test_feed_filters_and_a_slow_subscriber_is_cut_off_alone() -> None:
    made = Made()
    sup = NetworkSupervisor(made, tick_s=0, feed_batches=3)
    await sup.start([spec("a")])
    await settle()
    feed = sup.networks["id-a"].feed
    fast = feed.subscribe(FeedFilter.parse("vote_added", "ab" * 20, "5", KINDS))
    slow = feed.subscribe(FeedFilter())
    f = made.followers[0]
    got: list[list[dict[str, Any]]] = []
    for h in range(1, 9):
        f.emit([vote(h), vote(h, "CD" * 20), {"ts": 1, "kind": "step", "height": h}])
        while not fast.queue.empty():
            got.append(await fast.queue.get())
    assert [[r["height"] for r in b] for b in got] == [[5], [6], [7], [8]]
    assert all(r["validator"] == "AB" * 20 and "block_hash" not in r for b in got for r in b)  # nulls left out
    assert slow.overflowed and await slow.next() is None and feed.overflows == 1
    assert feed.subscribers == [fast]
    await sup.shutdown()
    assert await fast.next() is None  # the feed ends with the network


def test_feed_filter_validation() -> None:
    for args in (("nope", None, None), ("", None, None), (None, "xyz", None), (None, None, "-1"),
                 (None, None, "1" * 20)):  # fmt: skip
        with pytest.raises(InputError):
            FeedFilter.parse(*args, KINDS)
    assert FeedFilter.parse("step, vote_added", None, "0", KINDS).kinds == {"step", "vote_added"}


async def test_ticks_feed_status_and_completed_heights_to_the_alerts() -> None:
    made = Made()
    asked: list[tuple[int, int]] = []

    def outcomes(s: NetworkSpec, lo: int, hi: int) -> list[dict[str, Any]]:
        asked.append((lo, hi))
        return [{"height": h, "round": 0, "validator": "V", "type": t, "status": "absent"}
                for h in range(lo, hi + 1) for t in ("prevote", "precommit")]  # fmt: skip

    rec = Recorder()
    t = [0.0]
    sup = NetworkSupervisor(made, sinks=[rec], vote_outcomes=outcomes, tick_s=0, clock=lambda: t[0])
    await sup.start([spec("a", missed_votes=4, uptime_percent=None, round_escalation=2)])
    await settle()
    f = made.followers[0]
    f.height, f.round = 10, 0
    await sup.tick()
    f.height, f.round = 12, 2
    t[0] = 5.0
    f.events_total = 50
    await sup.tick()
    assert asked == [(5, 8), (9, 10)]  # the first look reads back 4 heights (missed_votes=4; uptime is off)
    assert [(e.rule, e.subject, e.active) for e in rec.events] == [("missed_votes", "V", True),
                                                                   ("round_escalation", "12", True)]  # fmt: skip
    assert sup.networks["id-a"].events_per_s() == 10.0
    f.committed = 14  # a follower that says what it committed: heights up to committed − 1 are complete
    await sup.tick()
    assert asked[-1] == (11, 13)
    await sup.unfollow("id-a")  # deleting a network ends its alerts
    assert [(e.rule, e.active) for e in rec.events[2:]] == [("missed_votes", False), ("round_escalation", False)]
