"""A followed network as the view's source (``--rpc``): :class:`FollowerSource` over a stand-in follower with the
live follower's shape, writing the real v0.34 node0's rows; a lost connection in the middle; and end to end, the
real follower reading the replay server."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bftscope.families.cometbft.live.endpoint import subscribe_messages
from bftscope.families.cometbft.replay.server import ReplayServer
from bftscope.families.cometbft.top.app import TopApp
from bftscope.families.cometbft.top.rpcsource import FollowerSource, rpc_source
from bftscope.families.cometbft.top.state import TopState
from bftscope.families.cometbft.validators.priority import genesis, schedule
from bftscope.ingest.live import Backoff
from bftscope.sources.websocket import WebSocketTransport
from tests.families.cometbft.replay import replaydata
from tests.families.cometbft.top.conftest import Recorded
from tests.families.cometbft.top.test_app import screen_text
from tests.helpers.chaos_proxy import ChaosProxy


@dataclass
class Endpoint:
    url: str
    state: str = "idle"
    frames: int = 0
    reconnects: int = 0
    active: bool = False
    last_error: str | None = None


@dataclass
class Status:
    name: str
    endpoints: list[Endpoint]


@dataclass
class StandInFollower:
    """Writes ``script``: each item a batch of rows, or a callable that changes the endpoint (a lost connection)."""

    script: list[Any]
    endpoint: Endpoint = field(default_factory=lambda: Endpoint("ws://127.0.0.1:26657/websocket"))
    listeners: list[Callable[[Sequence[Mapping[str, Any]]], None]] = field(default_factory=list)
    stopped: bool = False
    on_set: Callable[[int, Sequence[Any]], bool] | None = None
    sets: list[Any] = field(default_factory=list)

    def listen(self, callback: Callable[[Sequence[Mapping[str, Any]]], None]) -> Callable[[], None]:
        self.listeners.append(callback)
        return lambda: self.listeners.remove(callback)

    def status(self) -> Status:
        return Status("v034", [self.endpoint])

    async def run(self) -> None:
        self.endpoint.state, self.endpoint.active = "live", True
        if self.on_set is not None:
            for s in self.sets:
                self.on_set(1, s)
        for item in self.script:
            if self.stopped:
                return
            if callable(item):
                item(self.endpoint)
            else:
                self.endpoint.frames += len(item)
                for cb in list(self.listeners):
                    cb(item)
            await asyncio.sleep(0)
        while not self.stopped:  # a live network never ends by itself
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        self.stopped = True


def _cut(ep: Endpoint) -> None:
    ep.state, ep.reconnects, ep.last_error = "down", ep.reconnects + 1, "connection reset by peer"


def _back(ep: Endpoint) -> None:
    ep.state, ep.last_error = "live", None


def _index(rec: Recorded, height: int, step: str) -> int:
    return next(i for i, r in enumerate(rec.rows) if r["kind"] == "step" and (r["height"], r["step"]) == (height, step))


def test_a_followed_network_through_a_lost_connection(node0: Recorded) -> None:
    a, b, c = _index(node0, 10, "new_height"), _index(node0, 12, "prevote"), _index(node0, 13, "new_height")
    rows = node0.rows
    # rows up to height 12's prevote step, the connection lost and back mid-height 12, then on into height 13
    script = [rows[:a], rows[a : b + 1], _cut, _back, rows[b + 1 : c + 1]]
    follower = StandInFollower(script)
    source = FollowerSource(follower, clock=lambda: rows[b]["ts"])
    follower.on_set, follower.sets = source.on_validator_set, [[], node0.validators]  # an empty set never wipes one
    app = TopApp(source, refresh_s=3600)

    async def go() -> None:
        async with app.run_test(size=(110, 36)) as pilot:
            for _ in range(100):
                await pilot.pause()
                if app.state.view(0).height == 13:
                    break
            app.redraw()
            await pilot.pause()
            view = app.state.view(0)
            assert [v.address for v in view.validators] == [v.address for v in node0.validators]
            h12 = next(h for h in view.recent if h.height == 12)
            assert h12.rounds is None  # the connection was lost during height 12: not watched whole
            assert all(h.rounds == 1 for h in view.recent if 9 < h.height < 12)
            assert {v.prevote for v in view.validators} == {"waiting"}  # height 13 is watched from its start
            text = screen_text(app)
            assert "v034  ws://127.0.0.1:26657/websocket" in text and "connected" in text
            assert f"{c + 1:,} frames  {c + 1:,} rows" in text
            await pilot.press("q")
        assert follower.stopped

    asyncio.run(go())


def test_status_maps_the_endpoint_state(node0: Recorded) -> None:
    follower = StandInFollower([])
    source = FollowerSource(follower, clock=lambda: 7)
    assert source.status().connection == "unknown" and source.now_ns() == 7
    follower.endpoint.active, follower.endpoint.state = True, "connecting"
    assert source.status().connection == "reconnecting"
    _cut(follower.endpoint)
    st = source.status()
    assert (st.connection, st.reconnects, st.detail) == ("reconnecting", 1, "connection reset by peer")
    _back(follower.endpoint)
    assert source.status().connection == "connected" and source.status().detail == ""


def test_top_follows_a_replayed_node_over_rpc(node0: Recorded) -> None:
    """End to end: ``bftscope replay``'s server plays node0 of the real testnet (100x), the live follower decodes its
    websocket frames, the view shows them."""
    timeline = replaydata.timeline("node0")
    designated = schedule(genesis((v.address, v.power) for v in node0.validators), 80)  # heights 1..80

    async def go() -> None:
        async with ReplayServer(timeline, speed=100, autostart=False, start_on_subscribe=True) as srv:
            source = rpc_source([srv.url], name="v034", flush_interval=0.01, backoff=Backoff(base=0.001, cap=0.01))
            app = TopApp(source, refresh_s=3600)
            async with app.run_test(size=(110, 36)) as pilot:
                for _ in range(6000):  # a guard against a hang, not a timing
                    await pilot.pause(0.01)
                    if (app.state.height or 0) >= 30:
                        break
                app.redraw()
                await pilot.pause()
                view = app.state.view(0)
                # the set came from /validators, with its power, in set order
                assert [(v.address, v.power) for v in view.validators] == [
                    (v.address, v.power) for v in node0.validators
                ]
                assert view.connection == "connected" and (view.height or 0) >= 30
                done = [h for h in view.recent if h.committed and h.rounds is not None]
                assert len(done) >= 5
                for h in done:  # NewBlock's proposer is the one CometBFT's rule designates from genesis.json
                    assert h.rounds == 1 and h.proposer == designated[h.height - 1].proposer
                    assert h.duration_ms is not None and h.duration_ms > 0
                assert view.slowest and all(s.samples > 0 for s in view.slowest)
                text = screen_text(app)
                assert f"v034  {srv.url}" in text and "connected" in text
                await pilot.press("q")
            assert source.follower.status().endpoints[0].frames > 0

    asyncio.run(go())


def test_cuts_through_the_chaos_proxy_show_as_unknown(node0: Recorded) -> None:
    """The replay's websocket cut 3 times: each loss reaches the view, and every height the follower stores as an
    observation gap is shown as a gap (its rounds unknown), never as watched."""
    timeline = replaydata.timeline("node0")
    state = TopState([], recent=100, delay_window=100)  # keep every height of the capture for the check below
    gap_heights: set[int] = set()

    async def go() -> FollowerSource:
        srv = ReplayServer(timeline, speed=100, autostart=False, start_on_subscribe=True)
        async with srv, ChaosProxy("127.0.0.1", srv.port, cuts=[4_000, 8_000, 12_000]) as proxy:
            ws = f"ws://127.0.0.1:{proxy.port}/websocket"  # the stream is cut; /status, /block … answer directly
            source = rpc_source(
                [srv.url], name="v034", flush_interval=0.01, backoff=Backoff(base=0.001, cap=0.01),
                transport_factory=lambda _e: WebSocketTransport(ws, subscribe=subscribe_messages(), close_timeout=1.0),
            )  # fmt: skip
            source.follower.listen(lambda rows: gap_heights.update(_covered(rows)))
            app = TopApp(source, state, refresh_s=3600)
            async with app.run_test(size=(110, 36)) as pilot:
                last = max(timeline.blocks)
                for _ in range(6000):  # a guard against a hang, not a timing
                    await pilot.pause(0.01)
                    if proxy.cut_count == 3 and last in state.heights and state.heights[last].committed:
                        break
                await pilot.pause(0.1)
                app.redraw()
                await pilot.pause()
                assert "missing" not in screen_text(app)
                await pilot.press("q")
            assert proxy.cut_count == 3
            return source

    source = asyncio.run(go())
    assert source.follower.status().endpoints[0].reconnects >= 3
    assert gap_heights  # each reconnect leaves the heights it did not see whole as a gap
    shown = {h.height: h for h in state.view(0).recent}
    for h in gap_heights & shown.keys():
        assert shown[h].gap and shown[h].rounds is None, h
    watched = [h for h in shown.values() if h.rounds is not None]
    # between the cuts, heights are watched whole again (how many depends on how fast the reconnects are: the
    # replay runs at 100x, and a loaded machine reconnects slower, so more heights fall into the gaps)
    assert len(watched) >= 5 and not any(h.gap for h in watched)


def _covered(rows: Sequence[Mapping[str, Any]]) -> set[int]:
    out: set[int] = set()
    for r in rows:
        if r["kind"] == "observation_gap" and r.get("height") is not None:
            extra = json.loads(r["extra"]) if isinstance(r["extra"], str) else r["extra"]
            out |= set(range(r["height"], (extra.get("to_height") or r["height"]) + 1))
    return out
