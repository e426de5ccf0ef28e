"""The follower against fake CometBFT nodes on 127.0.0.1 serving the real v0.34 testnet (node0's WAL as §E frames):
every vote once, cut connections backfilled with their gaps stored, failover (a node down, a node that re-sends),
a silent stream, a refused subscription, a node whose /validators fails."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bftscope.families.cometbft.live.follower import EndpointState, NetworkFollower
from bftscope.families.cometbft.live.rpc import RpcValidator
from bftscope.ingest.live import Backoff, MemorySink
from tests.conftest import require_data
from tests.families.cometbft.live.fakenode import Chain, FakeNode, keyed_duplicates, serving, wal_chain

FAST = Backoff(base=0.001, cap=0.01)


@pytest.fixture
def chain() -> Chain:
    return wal_chain(require_data("cometbft/tendermint-v0.34-4node-wal") / "node0" / "data" / "cs.wal" / "wal")


def _follow(follower: NetworkFollower, done: Callable[[], bool]) -> None:
    async def go() -> None:
        task = asyncio.create_task(follower.run())
        for _ in range(6000):  # a guard against a hang, not a timing: the condition ends the wait
            if done() or task.done():
                break
            await asyncio.sleep(0.01)
        await follower.stop()
        await task

    asyncio.run(go())


def _rows(sink: MemorySink, kind: str) -> list[dict[str, Any]]:
    return [row for _, row in sink.events if row["kind"] == kind]


def _vote_keys(sink: MemorySink) -> list[tuple[int, int, str, str]]:
    return [(r["height"], r["round"], r["vote_type"], r["validator"]) for r in _rows(sink, "vote_added")]


def _keyed_duplicates(sink: MemorySink) -> Counter[tuple[Any, ...]]:
    return Counter(keyed_duplicates(sink.events))


def _follower(urls: list[str], sink: MemorySink, **kw: Any) -> NetworkFollower:
    return NetworkFollower("testnet", urls, sink, backoff=FAST, flush_interval=0.01, silence_timeout=5.0, **kw)


def test_every_vote_of_the_node_arrives_once(chain: Chain) -> None:
    node = FakeNode(chain)
    sink = MemorySink()
    sets: list[tuple[int, list[RpcValidator]]] = []
    with serving(node.app()) as url:
        follower = _follower([url], sink, on_validator_set=lambda h, vs: bool(sets.append((h, vs))) or True)
        _follow(follower, lambda: node.done and follower.status().events_total >= len(chain.frames))
    assert sorted(_vote_keys(sink)) == sorted(chain.votes)  # every vote the node added, once
    assert [r["height"] for r in _rows(sink, "block_committed")] == list(range(1, 78))
    assert {r["height"] for r in _rows(sink, "commit_sig")} == set(range(1, 77))  # from each next block
    assert _rows(sink, "observation_gap") == [] and _keyed_duplicates(sink) == Counter()
    assert {source for source, _ in sink.events} == {url.removeprefix("http://")}
    assert sets and [v.address for v in sets[0][1]] == [v["address"] for v in chain.validators]
    status = follower.status()
    assert status.committed == 77 and status.gaps == 0 and status.duplicates == 0
    (ep,) = status.endpoints
    assert ep.frames == len(chain.frames) + 6 and ep.skipped == {"subscribe ack": 6} and ep.errors == 0


def test_cut_connections_are_backfilled_and_stored_as_gaps(chain: Chain) -> None:
    """Cut 6 times while the chain moves on 40 frames each time: no row twice, every committed height's
    precommits present (stream or backfill), each cut one observation_gap naming its heights and the refill."""
    cuts = (90, 250, 400, 560, 700, 880)
    node = FakeNode(chain, cuts=cuts, skip_on_reconnect=40)
    sink = MemorySink()
    with serving(node.app()) as url:
        follower = _follower([url], sink)
        _follow(follower, lambda: node.done and follower.status().gaps == len(cuts))
    assert _keyed_duplicates(sink) == Counter()
    sigs = {(r["height"], r["validator_index"]): r for r in _rows(sink, "commit_sig")}
    for h in range(1, 78):
        for i, sig in enumerate(chain.commits[h]["signatures"]):
            if sig["block_id_flag"] == 2 and h < 77:  # 77's commit is in no later block and no gap
                assert sigs[(h, i)]["validator"] == sig["validator_address"], (h, i)
    assert {r["height"] for r in _rows(sink, "block_committed")} == set(range(1, 78))
    gaps = _rows(sink, "observation_gap")
    assert len(gaps) == len(cuts)
    missing_votes = chain.votes - set(_vote_keys(sink))
    for gap in gaps:
        extra = json.loads(gap["extra"])
        assert gap["height"] <= extra["to_height"] and extra["end_ns"] >= gap["ts"]
        if extra["refilled_heights"]:
            assert extra["refilled"] == ["block", "commit", "validators"] and extra["not_refilled"] is None
    covered = {h for g in gaps for h in range(g["height"], json.loads(g["extra"])["to_height"] + 1)}
    assert missing_votes and {h for h, *_ in missing_votes} <= covered  # every lost vote lies in a stored gap
    status = follower.status()
    assert status.endpoints[0].reconnects == len(cuts) and status.backfilled_heights > 0


def test_failover_skips_a_node_that_is_down_and_drops_what_a_second_node_resends(chain: Chain) -> None:
    down = FakeNode(chain, down=True)
    first, second = FakeNode(chain, cuts=(500,)), FakeNode(chain)
    sink = MemorySink()
    with serving(down.app()) as down_url, serving(first.app()) as a, serving(second.app()) as b:
        follower = _follower([down_url, a, b], sink)
        _follow(follower, lambda: second.done and follower.status().committed == 77 and follower.status().gaps == 1)
    status = follower.status()
    by_url = {e.url: e for e in status.endpoints}
    assert by_url[down_url].errors >= 1 and "cannot connect" in (by_url[down_url].last_error or "")
    assert by_url[a].frames > 0 and by_url[b].frames > 0
    assert sorted(_vote_keys(sink)) == sorted(chain.votes)  # the second node re-sent from its start: kept once
    assert _keyed_duplicates(sink) == Counter() and status.duplicates > 0
    assert {source for source, _ in sink.events} == {a.removeprefix("http://"), b.removeprefix("http://")}


def test_a_silent_stream_is_a_lost_connection(chain: Chain) -> None:
    node = FakeNode(chain, silent_at=300)
    sink = MemorySink()
    with serving(node.app()) as url:
        follower = NetworkFollower("testnet", [url], sink, backoff=FAST, flush_interval=0.01, silence_timeout=0.3)
        _follow(follower, lambda: node.done and follower.status().committed == 77 and follower.status().gaps == 1)
    (ep,) = follower.status().endpoints
    assert ep.reconnects == 1 and "silent for 0.3 s" in json.loads(_rows(sink, "observation_gap")[0]["extra"])["reason"]


def test_a_refused_subscription_is_counted_and_the_rest_followed(chain: Chain) -> None:
    node = FakeNode(chain, max_subscriptions=5)  # CometBFT's default: ValidatorSetUpdates is refused
    sink = MemorySink()
    with serving(node.app()) as url:
        follower = _follower([url], sink)
        _follow(follower, lambda: node.done and follower.status().committed == 77)
    (ep,) = follower.status().endpoints
    assert ep.skipped["rpc error -32603"] == 1 and ep.errors == 1 and "max_subscriptions" in (ep.last_error or "")
    assert sorted(_vote_keys(sink)) == sorted(chain.votes)


def test_validators_errors_never_replace_a_set(chain: Chain) -> None:
    node = FakeNode(chain, validators_error=True, cuts=(300,), skip_on_reconnect=40)
    sink = MemorySink()
    sets: list[int] = []
    with serving(node.app()) as url:
        follower = _follower([url], sink, on_validator_set=lambda h, vs: bool(sets.append(h)) or True)
        _follow(follower, lambda: node.done and follower.status().gaps == 1)
    status = follower.status()
    extra = json.loads(_rows(sink, "observation_gap")[0]["extra"])
    assert extra["refilled"] == ["block", "commit"] and extra["errors"]["validators"] > 0
    # asked at start, again after the reconnect (no set yet), and at each backfilled height: never stored
    assert sets == [] and status.validator_sets == 0 and status.validator_errors == 2 + extra["errors"]["validators"]


def test_stopping_while_disconnected_stores_the_open_gap(chain: Chain, tmp_path: Path) -> None:
    sink = MemorySink()
    follower = NetworkFollower("testnet", ["http://127.0.0.1:9"], sink, backoff=FAST, committed=10,
                               last_seen_at=1.0)  # fmt: skip
    _follow(follower, lambda: follower.status().endpoints[0].errors >= 3)
    (gap,) = _rows(sink, "observation_gap")
    extra = json.loads(gap["extra"])
    assert gap["height"] == 10 and gap["ts"] == 1_000_000_000 and extra["refilled"] == []
    assert follower.status().endpoints[0].state is EndpointState.STOPPED and sink.flushes == 1


def test_a_height_jump_in_the_stream_is_a_backfilled_gap(chain: Chain) -> None:
    """A node that drops events for a slow subscriber (no disconnect): the heights between two NewBlocks are
    backfilled and stored as one gap; nothing written twice."""
    node = FakeNode(chain, drop=(chain.block_at[20] - 5, chain.block_at[24] - chain.block_at[20] + 5))
    sink = MemorySink()
    with serving(node.app()) as url:
        follower = _follower([url], sink)
        _follow(follower, lambda: node.done and follower.status().observed_height == 77 and follower.status().gaps)
    (gap,) = _rows(sink, "observation_gap")
    extra = json.loads(gap["extra"])
    # from 19 (its late precommits may have been dropped too) to 24 (partly seen); 20..23 refilled
    assert (gap["height"], extra["to_height"], extra["refilled_heights"]) == (19, 24, [20, 23])
    assert extra["reason"].startswith("height jump in the stream: 20..23 not received")
    assert {r["height"] for r in _rows(sink, "block_committed")} == set(range(1, 78))
    assert {r["height"] for r in _rows(sink, "commit_sig")} == set(range(1, 77))
    assert _keyed_duplicates(sink) == Counter()
    assert follower.status().endpoints[0].reconnects == 0
