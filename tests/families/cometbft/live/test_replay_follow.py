"""The follower against the replay node (``bftscope replay``'s server) on the real v0.34 testnet: node by node,
every vote the node added arrives once; through the chaos proxy cutting the websocket 20 times, no event twice,
every committed height's precommits present after backfill, and the cuts stored as observation gaps."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from bftscope.config import Settings
from bftscope.families.cometbft.live.endpoint import subscribe_messages
from bftscope.families.cometbft.live.follower import NetworkFollower, NetworkStatus
from bftscope.families.cometbft.live.valsets import record_validator_set
from bftscope.families.cometbft.replay import server
from bftscope.families.cometbft.validators.history import set_at
from bftscope.ingest.live import Backoff, MemorySink
from bftscope.ingest.livesink import StoreSink
from bftscope.sources.websocket import WebSocketTransport
from bftscope.store import open_store
from tests.families.cometbft.live.fakenode import keyed_duplicates
from tests.families.cometbft.replay import replaydata
from tests.helpers import chaos_proxy

FAST = Backoff(base=0.001, cap=0.01)


def _votes(sink: MemorySink) -> list[tuple[int, int, int, str]]:
    types = {"prevote": 1, "precommit": 2}
    return [(r["height"], r["round"], types[r["vote_type"]], r["validator"])
            for _, r in sink.events if r["kind"] == "vote_added"]  # fmt: skip


def _duplicates(sink: MemorySink) -> Counter[tuple[Any, ...]]:
    return Counter(keyed_duplicates(sink.events))


async def _until(follower: NetworkFollower, task: asyncio.Task[None], done: Any) -> None:
    for _ in range(3000):  # a guard against a hang, not a timing
        if done() or task.done():
            return
        await asyncio.sleep(0.01)


@pytest.mark.parametrize("node", replaydata.NODES)
def test_every_vote_the_replayed_node_added_arrives_once(node: str) -> None:
    tl = replaydata.timeline(node)
    sink = MemorySink()

    async def go() -> NetworkFollower:
        async with server.ReplayServer(tl, speed=500, start_on_subscribe=True, autostart=False) as srv:
            follower = NetworkFollower(node, [srv.url], sink, backoff=FAST, flush_interval=0.01)
            task = asyncio.create_task(follower.run())
            assert srv.player is not None
            last = max(tl.blocks)

            def done() -> bool:
                s = follower.status()
                return srv.player.finished.is_set() and s.observed_height == last and not s.backfill_pending

            await _until(follower, task, done)
            await follower.stop()
            await task
            return follower

    follower = asyncio.run(go())
    expected = {(e.vote.height, e.vote.round, e.vote.type, e.vote.validator) for e in tl.events if e.vote}
    votes = _votes(sink)
    assert len(votes) == len(set(votes)) and set(votes) == expected
    assert sorted(r["height"] for _, r in sink.events if r["kind"] == "block_committed") == sorted(tl.blocks)
    status = follower.status()
    assert status.gaps == 0 and status.duplicates == 0 and status.validator_sets >= 1


def test_twenty_cuts_through_the_chaos_proxy() -> None:
    tl = replaydata.timeline("node2")
    sink = MemorySink()

    async def go() -> tuple[NetworkFollower, int]:
        srv = server.ReplayServer(tl, speed=60, autostart=False, start_on_subscribe=True)
        chaos = {"seed": 11, "min_bytes": 1_000, "max_bytes": 6_000, "max_cuts": 20}
        async with srv, chaos_proxy.ChaosProxy("127.0.0.1", srv.port, **chaos) as proxy:
            ws = f"ws://127.0.0.1:{proxy.port}/websocket"  # the stream is cut; /status, /block … answer directly
            follower = NetworkFollower(
                "node2", [srv.url], sink, backoff=FAST, flush_interval=0.01,
                transport_factory=lambda _e: WebSocketTransport(ws, subscribe=subscribe_messages(), close_timeout=1.0),
            )  # fmt: skip
            task = asyncio.create_task(follower.run())
            assert srv.player is not None
            last = max(tl.blocks)
            await _until(follower, task, lambda: srv.player.finished.is_set() and proxy.cut_count == 20
                         and follower.status().observed_height == last and not follower.status().backfill_pending
                         and any(e.active for e in follower.status().endpoints))  # fmt: skip
            await follower.stop()
            await task
            return follower, proxy.cut_count

    follower, cuts = asyncio.run(go())
    assert cuts == 20 and _duplicates(sink) == Counter()  # no event written twice
    sigs = {(r["height"], r["validator_index"]): r for _, r in sink.events if r["kind"] == "commit_sig"}
    for h, commit in tl.commits.items():
        if h < max(tl.blocks):  # the last height's commit is in no later block and in no gap
            for i, sig in enumerate(commit.sigs):
                if sig.flag == 2:
                    assert sigs[(h, i)]["validator"] == sig.validator, (h, i)
    gaps = [r for _, r in sink.events if r["kind"] == "observation_gap"]
    assert 0 < len(gaps) <= cuts and follower.status().endpoints[0].reconnects >= len(gaps)
    covered = set()
    for g in gaps:
        extra = json.loads(g["extra"])
        if g["height"] is not None and extra["to_height"] is not None:
            covered |= set(range(g["height"], extra["to_height"] + 1))
    expected = {(e.vote.height, e.vote.round, e.vote.type, e.vote.validator) for e in tl.events if e.vote}
    lost = expected - set(_votes(sink))
    assert {h for h, *_ in lost} <= covered  # every vote not seen lies in a stored gap


def _gap_refilled(s: NetworkStatus) -> bool:
    return s.gaps == 1 and s.backfilled_heights + s.not_refilled_heights >= 1 and not s.backfill_pending


def test_a_node_whose_validators_fail_keeps_the_stored_set(tmp_path: Path) -> None:
    """The set fetched at start is stored; then /validators answers errors and the connection is cut: the
    backfill's fetches fail, are counted, and the stored set stays the set at every height."""
    tl = replaydata.timeline("node1")
    settings = Settings(data_dir=tmp_path / "data")
    store = open_store(settings)
    run = store.get_or_create_run("net", "cometbft")

    async def go() -> NetworkFollower:
        async with (
            server.ReplayServer(tl, speed=100, autostart=False, start_on_subscribe=True) as srv,
            chaos_proxy.ChaosProxy("127.0.0.1", srv.port, cuts=[]) as proxy,
        ):
            follower = NetworkFollower(
                "net", [f"http://127.0.0.1:{proxy.port}"], StoreSink(store, "net", "cometbft"), backoff=FAST,
                flush_interval=0.01, on_validator_set=lambda h, vs: record_validator_set(store, run.id, h, vs),
            )  # fmt: skip
            task = asyncio.create_task(follower.run())
            await _until(follower, task, lambda: follower.status().validator_sets == 1)
            srv.fail = {"validators"}
            await _until(follower, task, lambda: (follower.status().committed or 0) >= 20)
            # the node is unreachable for 0.3 s (the chain, at speed 100, commits ~15 heights meanwhile): those
            # heights are backfilled after the reconnect, and their /validators fail
            proxy.down = True
            assert proxy.cut_now() >= 1
            await asyncio.sleep(0.3)
            proxy.down = False
            # the gap is counted when the connection is lost, its backfill queued after the reconnect: wait for both
            await _until(follower, task, lambda: _gap_refilled(follower.status()))
            await follower.stop()
            await task
            return follower

    try:
        follower = asyncio.run(go())
        members = [(v.address, v.power) for v in set_at(store, run.id, 77)]
        gap_extra = store.query("SELECT extra FROM events WHERE kind = 'observation_gap'")
    finally:
        store.close()
    assert members == [(v.address, v.power) for v in tl.set_at(1).validators] and len(members) == 4
    status = follower.status()
    assert status.validator_sets == 1 and status.validator_errors >= 1, repr(status).replace("endpoints", "\nEP")
    (extra,) = [json.loads(e) for (e,) in gap_extra]
    assert "validators" not in extra["refilled"] and extra["errors"]["validators"] == status.validator_errors
