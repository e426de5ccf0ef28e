"""The Casper follower in a child process (``follow/process.py``), against replayed nodes serving the real
payloads of ``casper-sse/``: what reaches the sink is what the follower in this process decodes; its status follows
the child's; a child killed -9 ends the run with an error and a new follower resumes with nothing lost; a child
whose parent was killed -9 stops; stop at any moment; listeners called on the event loop; the pipe's messages."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from typing import Any

import pytest

from bftscope.families.casper.follow import pipewire
from bftscope.families.casper.follow.follower import CasperFollower
from bftscope.families.casper.follow.process import FollowerProcessError, ProcessFollower
from bftscope.families.casper.follow.status import CasperStatus
from bftscope.families.casper.model import CasperEvent
from bftscope.families.casper.replay.payloads import read_payloads
from bftscope.families.casper.replay.server import ReplayNode
from bftscope.families.casper.replay.wire import Wire
from bftscope.ingest.live import Backoff, Gap, MemorySink
from tests.conftest import require_data
from tests.families.casper.statuswait import until

FAST = Backoff(base=0.01, cap=0.05)


def _real_payloads() -> list[bytes]:
    """Every real event payload (transcripts and single events), ApiVersion left to the node's handshake."""
    return [p for p in read_payloads([require_data("casper-sse")]) if not p.lstrip().startswith(b'{"ApiVersion"')]


def _seen(e: CasperEvent) -> tuple[Any, ...]:
    return (e.source, e.channel, e.event_id, e.type, e.key, e.raw, e.fields)


def test_the_child_hands_over_what_the_follower_here_decodes() -> None:
    payloads = _real_payloads()
    assert len(payloads) >= 20

    async def follow(in_child: bool, expected: int | None) -> tuple[MemorySink, CasperStatus, CasperStatus, int]:
        sink = MemorySink()
        async with ReplayNode(payloads, wire=Wire(split=True, batch=3, crlf=True, seed=5)) as node:
            port = node.port
            kind = ProcessFollower if in_child else CasperFollower
            f = kind("n", [node.url], sink, backoff=FAST)
            task = asyncio.create_task(f.run())
            if expected is None:  # here: until nothing more comes for 0.5 s
                counts = [-1]

                def still(s: CasperStatus) -> bool:
                    counts.append(s.events_total)
                    return s.nodes[0].status == 2 and len(counts) > 25 and counts[-25] == s.events_total

                live = await until(f, still, "every event")
            else:
                live = await until(f, lambda s: s.nodes[0].status == 2 and s.events_total >= expected, "every event")
                await asyncio.sleep(0.2)  # nothing more comes
            await f.stop()
            await task
            return sink, live, f.status(), port

    here, _, _, port_here = asyncio.run(follow(False, None))
    there, live, ended, port = asyncio.run(follow(True, len(here.events)))
    relabel = {f"127.0.0.1:{port}": f"127.0.0.1:{port_here}"}

    def seen(sink: MemorySink) -> list[tuple[Any, ...]]:
        return sorted((relabel.get(s, s), *_seen(e)[1:]) for s, e in sink.events)

    assert len(there.events) == len(here.events) >= 10
    assert seen(there) == seen(here)  # every event, field by field, as decoded here
    assert all(isinstance(e, CasperEvent) for _, e in there.events)
    node = live.nodes[0]
    assert (node.state, node.active, node.api_version) == ("connected", True, "1.5.6")
    assert set(node.channels) == {"main", "deploys", "sigs"} and node.events == len(there.events)
    assert live.events_total == len(there.events) and there.flushes == 1
    assert (ended.nodes[0].state, ended.nodes[0].active) == ("stopped", False)


def test_a_child_killed_mid_stream_ends_the_run_and_the_next_resumes_without_a_loss() -> None:
    payloads = _real_payloads()
    events = [p for p in payloads if b'"FinalitySignature"' in p[:40]]
    events = (events * (400 // len(events) + 1))[:400]  # one channel, ids 0..399

    async def main() -> tuple[list[int], list[int], str, CasperStatus]:
        sink = MemorySink()
        async with ReplayNode(events, preload=150) as node:
            f = ProcessFollower("n", [f"{node.url}/events/sigs"], sink, backoff=FAST)
            task = asyncio.create_task(f.run())
            await until(f, lambda s: s.events_total >= 150, "the first events")
            os.kill(f._process.pid, signal.SIGKILL)
            with pytest.raises(FollowerProcessError) as failed:
                await asyncio.wait_for(task, 30)
            first = [e.event_id for _, e in sink.events]
            after = f.status()
            await node.release()  # the rest, while nobody follows
            last = max(i for i in first if i is not None)
            g = ProcessFollower("n", [f"{node.url}/events/sigs"], sink, backoff=FAST,
                                start_from={(after.nodes[0].label, "sigs"): last})  # as the store's last id resumes
            task = asyncio.create_task(g.run())
            await until(g, lambda s: s.nodes[0].last_ids.get("sigs") == 399, "the rest")
            await g.stop()
            await task
            return first, [e.event_id for _, e in sink.events], str(failed.value), after

    first, every, error, after = asyncio.run(main())
    assert "exited without ending (exit code -9)" in error
    assert first == list(range(150))  # what reached the sink before the kill: whole batches, in order
    assert sorted(set(every)) == list(range(400))  # nothing lost; the last id before the kill comes twice
    assert every[150] == 149 and len(every) == 401
    assert [n.state for n in after.nodes] == ["stopped"]  # not "connected", and never a node with no events


_ORPHAN = textwrap.dedent("""
    import asyncio, sys
    from bftscope.families.casper.follow.process import ProcessFollower
    from bftscope.ingest.live import Backoff, MemorySink

    async def main():
        f = ProcessFollower("n", [sys.argv[1]], MemorySink(), backoff=Backoff(base=0.01, cap=0.05))
        task = asyncio.create_task(f.run())
        while f._process is None or f._process.pid is None:
            await asyncio.sleep(0.01)
        print(f._process.pid, flush=True)
        await task

    if __name__ == "__main__":
        asyncio.run(main())
""")


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")  # exited (nobody reaped it yet)
    except FileNotFoundError:
        return True


def test_a_child_whose_parent_was_killed_stops(tmp_path: Any) -> None:
    script = tmp_path / "parent.py"
    script.write_text(_ORPHAN)
    # a node nobody listens on: the child would retry for ever
    parent = subprocess.Popen([sys.executable, str(script), "http://127.0.0.1:9/events/main"], stdout=subprocess.PIPE,
                              text=True, cwd=os.getcwd())  # fmt: skip
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        time.sleep(0.5)
        assert not _gone(child)  # following (retrying)
        parent.kill()
        parent.wait()
        deadline = time.monotonic() + 20
        while not _gone(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _gone(child), "the child outlived its parent"
    finally:
        parent.kill()
        parent.wait()
        if parent.stdout is not None:
            parent.stdout.close()


def test_stop_before_during_and_after_the_start() -> None:
    async def main() -> list[Any]:
        out: list[Any] = []
        f = ProcessFollower("n", ["http://127.0.0.1:9"], MemorySink())
        await f.stop()
        await asyncio.wait_for(f.run(), 5)  # stopped before: never starts a child
        out.append(f._process)
        g = ProcessFollower("n", ["http://127.0.0.1:9"], MemorySink(), backoff=FAST)
        task = asyncio.create_task(g.run())
        await asyncio.sleep(0)  # the child is being started
        await asyncio.wait_for(g.stop(), 30)
        await asyncio.wait_for(task, 5)  # a stop is not an error
        out += [g._process.exitcode, g.status().nodes[0].state]
        await g.stop()  # again: nothing to do
        return out

    assert asyncio.run(main()) == [None, 0, "stopped"]


def test_listeners_are_called_on_the_event_loop_with_each_batch() -> None:
    payloads = [p for p in _real_payloads() if b'"FinalitySignature"' in p[:40]]

    async def main() -> tuple[list[int], set[int], int, int]:
        got: list[int] = []
        threads: set[int] = set()

        def listener(rows: list[dict[str, Any]]) -> None:
            threads.add(threading.get_ident())
            got.extend(r["event_id"] for r in rows)

        def broken(rows: list[dict[str, Any]]) -> None:
            raise RuntimeError("a subscriber's bug")

        async with ReplayNode(payloads) as node:
            f = ProcessFollower("n", [f"{node.url}/events/sigs"], MemorySink(), backoff=FAST)
            f.listen(listener)
            f.listen(broken)
            task = asyncio.create_task(f.run())
            await until(f, lambda s: len(got) >= len(payloads), "every batch")
            await f.stop()
            await task
            return got, threads, threading.get_ident(), f.status().listener_errors

    got, threads, loop_thread, errors = asyncio.run(main())
    assert got == list(range(len(payloads)))
    assert threads == {loop_thread} and errors >= 1


class _Conn:
    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def send_bytes(self, b: bytes) -> None:
        self.sent.append(b)


def test_the_pipe_carries_real_events_gaps_and_ends_exactly() -> None:
    from bftscope.families.casper.decoder import CasperDecoder
    from bftscope.sources.base import Frame

    dec = CasperDecoder("n:1", "events")
    events = [e for i, p in enumerate(_real_payloads()) for e in dec.feed(Frame(p, id=str(i)))]
    conn = _Conn()
    sink = pipewire.PipeSink(conn)
    sink.write("n:1", events)
    gap = Gap("n:1", 1.0, 2.5, "main: cut")
    sink.gap(gap)
    sink.end()
    sink.end("ValueError: bad")
    decoded = [pipewire.decode(m) for m in conn.sent]
    assert decoded[0] == ("events", ("n:1", events))  # every field, the raw bytes, the receipt time
    assert decoded[1:] == [("gap", gap), ("done", ""), ("failed", "ValueError: bad")]
    assert pipewire.decode(b"Zsomething") == ("unknown", None)


def test_the_events_pipe_holds_a_whole_batch() -> None:
    import fcntl
    import multiprocessing as mp

    from bftscope.families.casper.follow.process import _widen

    reader, writer = mp.get_context("spawn").Pipe(duplex=False)
    try:
        assert fcntl.fcntl(reader.fileno(), fcntl.F_GETPIPE_SZ) == 64 * 1024  # Linux's default
        _widen(reader)
        assert fcntl.fcntl(reader.fileno(), fcntl.F_GETPIPE_SZ) == 1 << 20
    finally:
        reader.close()
        writer.close()


def test_a_sigterm_to_the_child_ends_it_as_a_stop_does() -> None:
    # a service manager stopping `bftscope serve` signals its whole process group: the child hands over what it
    # holds and ends, and the follower's run ends without an error (the server is stopping, nothing to restart)
    payloads = [p for p in _real_payloads() if b'"FinalitySignature"' in p[:40]]

    async def main() -> tuple[list[int | None], CasperStatus, int]:
        sink = MemorySink()
        async with ReplayNode(payloads) as node:
            f = ProcessFollower("n", [f"{node.url}/events/sigs"], sink, backoff=FAST)
            task = asyncio.create_task(f.run())
            await until(f, lambda s: s.events_total >= len(payloads), "every event")
            os.kill(f._process.pid, signal.SIGTERM)
            await asyncio.wait_for(task, 30)  # no FollowerProcessError
            return [e.event_id for _, e in sink.events], f.status(), f._process.exitcode

    ids, status, code = asyncio.run(main())
    assert ids == list(range(len(payloads))) and code == 0
    assert [n.state for n in status.nodes] == ["stopped"]


class _Refusing(MemorySink):
    """A sink whose store refuses its first ``n`` writes."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.refusals = n

    def write(self, source: str, events: Any) -> None:
        if self.refusals:
            self.refusals -= 1
            raise OSError(28, "No space left on device")
        super().write(source, events)


def test_a_refused_write_is_asked_again_and_counted_nothing_lost() -> None:
    payloads = [p for p in _real_payloads() if b'"FinalitySignature"' in p[:40]]

    async def main() -> tuple[list[int | None], CasperStatus, str | None]:
        sink = _Refusing(2)
        async with ReplayNode(payloads) as node:
            f = ProcessFollower("n", [f"{node.url}/events/sigs"], sink, backoff=FAST)
            task = asyncio.create_task(f.run())
            await until(f, lambda s: s.events_total >= len(payloads), "every event")
            await f.stop()
            await task
            return [e.event_id for _, e in sink.events], f.status(), f.last_write_error

    ids, status, error = asyncio.run(main())
    assert ids == list(range(len(payloads)))  # in order, once each
    assert status.write_errors == 2 and error is not None and "No space left" in error
