"""The Casper follower against replayed nodes: the handshake (a first event that is not ApiVersion is a counted
error; a 2.x node is incompatible, −2, not retried), the keep-alive timeout (a silent connection is reconnected
with ``start_from=<last id>``), a node that went away shows "reconnecting" (3) and resumes where it was; node
URLs and versions."""

from __future__ import annotations

import asyncio
import json

import pytest

from bftscope.errors import InputError
from bftscope.families.casper.follow.follower import CasperFollower
from bftscope.families.casper.follow.nodeurl import parse_node_url
from bftscope.families.casper.follow.status import CasperStatus
from bftscope.families.casper.follow.version import incompatibility
from bftscope.families.casper.replay.server import ReplayNode
from bftscope.families.casper.replay.wire import Wire
from bftscope.ingest.live import Backoff, MemorySink
from tests.families.casper.statuswait import until

FAST = Backoff(base=0.01, cap=0.05)


def _sig(i: int) -> bytes:
    body = {"block_hash": "ab", "era_id": 1, "signature": "01", "public_key": f"k{i}"}
    return json.dumps({"FinalitySignature": body}, separators=(",", ":")).encode()


def _ids(sink: MemorySink) -> list[int | None]:
    return [e.event_id for _, e in sink.events]


def test_a_silent_connection_is_reconnected_from_the_last_id_seen() -> None:
    async def main() -> tuple[ReplayNode, MemorySink, CasperStatus]:
        sink = MemorySink()
        # no keep-alive comments at all for 60 s: only the follower's keep-alive timeout can notice
        async with ReplayNode([_sig(i) for i in range(5)], first_id=40, preload=3, wire=Wire(keepalive_s=60)) as node:
            f = CasperFollower("n", [f"{node.url}/events/sigs"], sink, keepalive_timeout=0.3, backoff=FAST)
            task = asyncio.create_task(f.run())
            await until(f, lambda s: s.nodes[0].reconnects >= 1 and s.nodes[0].status == 2, "a reconnect")
            await node.release()  # the live events after the reconnect
            st = await until(f, lambda s: s.nodes[0].last_ids.get("sigs") == 44, "the live events")
            await f.stop()
            await task
            return node, sink, st

    node, sink, st = asyncio.run(main())
    assert node.start_froms[:2] == [("sigs", 0), ("sigs", 42)]  # the whole buffer, then from the last id seen
    assert st.nodes[0].last_error is not None and "no bytes for 0.3 s" in st.nodes[0].last_error
    ids = _ids(sink)
    assert sorted(set(ids)) == [40, 41, 42, 43, 44] and ids[:3] == [40, 41, 42]  # 42 again after a resume: a node
    assert all(e.type == "FinalitySignature" for _, e in sink.events)  # sends id ≥ start_from; the store keeps one


def test_a_node_that_went_away_is_reconnecting_and_resumes_where_it_was() -> None:
    events = [_sig(i) for i in range(10)]

    async def main() -> tuple[list[int], list[int | None], list[tuple[str, int | None]]]:
        sink = MemorySink()
        node = await ReplayNode(events, preload=4).start()
        port = node.port
        f = CasperFollower("n", [node.url], sink, backoff=FAST)
        task = asyncio.create_task(f.run())
        seen = []
        st = await until(f, lambda s: s.nodes[0].last_ids.get("sigs") == 3 and s.nodes[0].status == 2, "connected")
        seen.append(st.nodes[0].status)
        await node.close()  # the node goes away
        st = await until(f, lambda s: s.nodes[0].status != 2, "the loss")
        seen.append(st.nodes[0].status)
        assert st.nodes[0].state == "reconnecting" and st.nodes[0].events == 4 and st.nodes[0].last_error
        again = ReplayNode(events, preload=10)  # back, with the node's later events buffered
        await again.start(port=port)
        # (on a loaded machine the resumed connection may time out once more: connected again is what counts)
        st = await until(f, lambda s: s.nodes[0].last_ids.get("sigs") == 9 and s.nodes[0].status == 2, "the resume")
        seen.append(st.nodes[0].status)
        await f.stop()
        await task
        await again.close()
        return seen, _ids(sink), again.start_froms

    seen, ids, starts = asyncio.run(main())
    assert seen == [2, 3, 2]
    assert sorted(set(ids)) == list(range(10))
    assert ("sigs", 3) in starts  # resumed from the last id seen on that channel


def test_a_2x_node_is_incompatible_and_not_retried() -> None:
    async def main() -> tuple[CasperStatus, int]:
        sink = MemorySink()
        async with ReplayNode([_sig(0)], api_version="2.0.0") as node:
            f = CasperFollower("n", [node.url], sink, backoff=FAST)
            await asyncio.wait_for(f.run(), 20)  # every channel gave up: run ends by itself
            return f.status(), node.connections

    st, connections = asyncio.run(main())
    assert (st.nodes[0].status, st.nodes[0].state, st.nodes[0].api_version) == (-2, "incompatible", "2.0.0")
    assert connections == 3 and st.events_total == 0  # one try per channel, none retried
    assert "2.x" in (st.nodes[0].last_error or "")


def test_a_first_event_that_is_not_api_version_is_a_counted_connection_error() -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        body = b"data:" + _sig(0) + b"\nid:1\n\n"
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: %d\r\n\r\n" % len(body)
                     + body)  # fmt: skip
        await writer.drain()
        writer.close()

    async def main() -> CasperStatus:
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        f = CasperFollower("n", [f"http://127.0.0.1:{port}/events/sigs"], MemorySink(), backoff=FAST)
        task = asyncio.create_task(f.run())
        st = await until(f, lambda s: s.nodes[0].bad_handshakes >= 2, "bad handshakes")
        await f.stop()
        await task
        server.close()
        await server.wait_closed()
        return st

    st = asyncio.run(main())
    node = st.nodes[0]
    assert node.events == 0 and node.status in (1, 3) and "not ApiVersion" in (node.last_error or "")


def test_several_nodes_and_the_legacy_root_at_once() -> None:
    async def main() -> tuple[MemorySink, CasperStatus]:
        sink = MemorySink()
        async with ReplayNode([_sig(0), _sig(1)]) as a, ReplayNode([_sig(1), b'"Shutdown"'], first_id=7) as b:
            f = CasperFollower("n", [a.url, f"{b.url}/events"], sink, backoff=FAST)
            task = asyncio.create_task(f.run())
            st = await until(f, lambda s: s.events_total == 4, "4 events")
            await f.stop()
            await task
            return sink, st

    sink, st = asyncio.run(main())
    assert [sorted(n.channels) for n in st.nodes] == [["deploys", "main", "sigs"], ["events"]]
    assert sorted((e.source.rsplit(":")[0], e.channel, e.key) for _, e in sink.events) == [
        ("127.0.0.1", "events", "8"), ("127.0.0.1", "events", "ab k1"),
        ("127.0.0.1", "sigs", "ab k0"), ("127.0.0.1", "sigs", "ab k1")]  # fmt: skip
    assert st.nodes[1].shutdowns == 1
    gauges = {(m, labels["node"]): v for m, _, labels, v in st.gauges()}
    assert gauges[("bftscope_casper_node_status", st.nodes[0].label)] == 2.0


@pytest.mark.parametrize(("url", "label", "channels"), [
    ("http://10.0.0.1:9999", "10.0.0.1:9999", ["deploys", "main", "sigs"]),
    ("https://u:p@node.example/sse/", "node.example:443", ["deploys", "main", "sigs"]),
    ("http://node:9999/events", "node:9999", ["events"]),
    ("http://node:9999/events/sigs", "node:9999", ["sigs"]),
])  # fmt: skip
def test_node_urls(url: str, label: str, channels: list[str]) -> None:
    node = parse_node_url(url)
    assert (node.label, sorted(node.channels)) == (label, channels)
    if "u:p@" in url:
        assert node.channels["main"] == "https://u:p@node.example/sse/events/main" and "u:p" not in node.shown


@pytest.mark.parametrize("url", ["ws://node:9999", "http://node:9999/events/blocks", "node:9999", "http://:9"])
def test_bad_node_urls_are_refused(url: str) -> None:
    with pytest.raises(InputError):
        parse_node_url(url)


def test_versions() -> None:
    assert [incompatibility(v) for v in ("1.5.6", "1.0.0", "1.4.13-rc1")] == [None, None, None]
    assert "2.x" in (incompatibility("2.0.0") or "")
    assert incompatibility("0.9.9") and incompatibility("garbage") and incompatibility("")
