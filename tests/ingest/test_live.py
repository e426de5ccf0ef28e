"""The live runner with in-memory transports: exactly-once delivery across random cuts (the transport
resumes after the last id), a bounded backoff sequence, states and counters, observation gaps, clean
shutdown; and a recorded transcript replayed through the same decoder gives the same events."""

from __future__ import annotations

import asyncio
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from bftscope.ingest.live import Backoff, LiveRunner, LiveSource, MemorySink, SourceState
from bftscope.sources.base import Frame, MockTransport
from bftscope.sources.jsonframes import JsonFrameDecoder
from bftscope.sources.replay import ReplayTransport, read_recording, write_recording
from bftscope.sources.sse import SSEParser
from tests.conftest import require_data


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await asyncio.sleep(0)


def _real_frames() -> list[Frame]:
    """The real Casper transcript's events, given ids 1..n where the recording has none (a live server would)."""
    frames = read_recording(require_data("casper-sse/sidecar_USAGE_stream_1.sse"))
    frames += read_recording(require_data("casper-sse/sidecar_USAGE_stream_4.sse"))
    return [Frame(f.data, id=str(i), event=f.event) for i, (_, f) in enumerate(frames, 1)]


@settings(max_examples=40, deadline=None)
@given(cuts=st.sets(st.integers(0, 4), max_size=5), refuse=st.integers(0, 3), seed=st.floats(0, 1))
def test_every_event_exactly_once_across_cuts(cuts: set[int], refuse: int, seed: float) -> None:
    frames = [*_real_frames(), Frame(b"{not json", id="bad")]
    clock = FakeClock()
    assert len(frames) == 4  # (stream_4 ends inside an event: a live server would resend it, so it is dropped)
    transport = MockTransport(frames, cuts=cuts, refuse=refuse, finite=True)
    sink = MemorySink()
    backoff = Backoff(base=0.5, cap=4.0)
    runner = LiveRunner([LiveSource("casper", transport, JsonFrameDecoder())], sink, backoff=backoff,
                        clock=clock, draw=lambda: seed, sleep=clock.sleep)  # fmt: skip
    asyncio.run(runner.run())
    got = [e.id for _, e in sink.events]
    assert got == [f.id for f in frames[:-1]]  # each once, in order
    stats = runner.stats["casper"]
    assert stats.state is SourceState.STOPPED and sink.flushes == 1
    assert stats.reconnects == len(cuts) + refuse == len(runner.delays["casper"])
    assert all(0 <= d <= backoff.cap for d in runner.delays["casper"])
    assert stats.events == len(frames) - 1 and stats.frames == len(frames)
    assert stats.skipped == {"not JSON": 1}
    # one gap per lost connection (refusals while already disconnected extend the same gap)
    assert len(sink.gaps) == len(cuts) + (1 if refuse else 0)
    assert all(g.source == "casper" and g.start <= g.end for g in sink.gaps)
    # a reconnect asks to resume after the last frame delivered before the cut
    assert transport.opens[0] is None
    assert {o for o in transport.opens[1:] if o is not None} <= {f.id for f in frames}


def test_backoff_is_capped_exponential_with_full_jitter() -> None:
    b = Backoff(base=1.0, factor=2.0, cap=10.0)
    assert [b.delay(n, lambda: 1.0) for n in range(6)] == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    assert b.delay(3, lambda: 0.25) == 2.0 and b.delay(1000, lambda: 1.0) == 10.0


def test_a_source_that_never_connects_fails_after_max_attempts_and_records_the_gap() -> None:
    clock = FakeClock()
    sink = MemorySink()
    bad = MockTransport([], refuse=100)
    good = MockTransport([Frame(b"1", id="a")], finite=True)
    runner = LiveRunner([LiveSource("bad", bad, JsonFrameDecoder()), LiveSource("good", good, JsonFrameDecoder())],
                        sink, backoff=Backoff(base=1.0, cap=3.0), max_attempts=4, clock=clock, draw=lambda: 1.0,
                        sleep=clock.sleep)  # fmt: skip
    asyncio.run(runner.run())
    assert runner.stats["bad"].state is SourceState.FAILED and len(bad.opens) == 5
    assert runner.delays["bad"] == [1.0, 2.0, 3.0, 3.0]
    assert "refused" in (runner.stats["bad"].last_error or "")
    assert runner.stats["good"].state is SourceState.STOPPED and [e.doc for _, e in sink.events] == [1]
    [gap] = sink.gaps  # never observed: unknown from the first failure to the end, not "missing"
    assert gap.source == "bad" and gap.start == 1000.0 and gap.end == clock.now


def test_stop_cancels_closes_and_flushes() -> None:
    sink = MemorySink()
    transport = MockTransport([Frame(b'{"a": 1}', id="1")])  # infinite: idles after its frame

    async def go() -> LiveRunner:
        runner = LiveRunner([LiveSource("s", transport, JsonFrameDecoder())], sink)
        task = asyncio.create_task(runner.run())
        while not sink.events:
            await asyncio.sleep(0)
        assert runner.stats["s"].state is SourceState.LIVE
        await runner.stop()
        await task
        return runner

    runner = asyncio.run(go())
    assert runner.stats["s"].state is SourceState.STOPPED and not transport.is_open and sink.flushes == 1
    assert runner.stats["s"].frames == 1 and runner.stats["s"].last_frame_at is not None and sink.gaps == []


def test_replay_gives_the_live_mock_events(tmp_path: Path) -> None:
    raw = require_data("casper-sse/sidecar_USAGE_stream_1.sse").read_bytes()
    frames = SSEParser().feed(raw)
    # the live path: the frames arrive over a (mock) connection that is cut once
    live_sink = MemorySink()
    live = MockTransport(frames, cuts={len(frames)}, finite=True)  # cut after the last frame (it has an id)
    asyncio.run(LiveRunner([LiveSource("s", live, JsonFrameDecoder())], live_sink, draw=lambda: 0.0).run())
    # the recorded path: the raw transcript, and a timed recording replayed at 10x
    waits: list[float] = []

    async def sleep(s: float) -> None:
        waits.append(s)

    rec = tmp_path / "rec.jsonl"
    write_recording(rec, [(100.0 + 2 * i, f) for i, f in enumerate(frames)])
    for path, speed in ((require_data("casper-sse/sidecar_USAGE_stream_1.sse"), 0.0), (rec, 10.0)):
        sink = MemorySink()
        replay = ReplayTransport(path, speed=speed, sleep=sleep)
        asyncio.run(LiveRunner([LiveSource("s", replay, JsonFrameDecoder())], sink).run())
        assert sink.events == live_sink.events and sink.events
    assert waits == [0.2] * (len(frames) - 1)
