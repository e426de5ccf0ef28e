"""The sidecar's SSE re-broadcast over a real server: ApiVersion first, bftscope's own ids, ``start_from``
replay from the store and the ring buffer then live with no gap and no duplicate at the seams (while a writer
keeps writing), the sidecar's 404/422/503, keep-alive comments, and a client that leaves is cleaned up."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bftscope.config import Settings
from bftscope.families.casper import sse_routes
from bftscope.families.casper.model import CHANNELS
from tests.families.casper.gen import chain
from tests.families.casper.servers import Instance, serve, wait_for
from tests.families.casper.sse_lines import Event, events


@pytest.fixture
def inst(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Instance]:
    ring = getattr(request, "param", 8)
    cfg = Settings(data_dir=tmp_path / "a", rate_limit_enabled=False, follow_networks=False, casper_sse_buffer=ring,
                   casper_max_subscribers=2, casper_root_network="c1")  # fmt: skip
    with serve(cfg) as i:
        i.add_network("c1")
        yield i


def _stored(inst: Instance, path: str, start: int) -> list[tuple[int, str]]:
    rows = inst.ctx.store.query("SELECT out_id, type, channel, raw FROM casper_payloads WHERE out_id >= :lo "
                                "ORDER BY out_id", {"lo": start})  # fmt: skip
    keep = (lambda t, ch: t in CHANNELS["events"]) if path == "events" else (lambda t, ch: ch == path)
    return [(int(i), str(raw)) for i, t, ch, raw in rows if keep(t, ch)]


def _read_until(stream: Iterator[Event], last_id: int) -> list[Event]:
    got: list[Event] = []
    for ev in stream:
        got.append(ev)
        if ev.id is not None and ev.id >= last_id:
            return got
    raise AssertionError(f"the stream ended before id {last_id}: {[e.id for e in got]}")


@pytest.mark.parametrize("path", ["main", "events"])
def test_start_from_replays_then_goes_live_without_gap_or_duplicate(inst: Instance, path: str) -> None:
    sink = inst.sink("c1", flush_s=0.002)
    sink.write("n1:9999", chain(1, 20, deploys=1, sigs=2))  # 80 entities: far more than the ring's 8
    sink.flush()
    done = threading.Event()

    def keep_writing() -> None:  # one height per write, going on while the client connects and replays
        for h in range(21, 81):
            sink.write("n1:9999", chain(h, 1, deploys=1, sigs=2))
            time.sleep(0.003)
        sink.flush()
        done.set()

    writer = threading.Thread(target=keep_writing)
    with httpx.Client(base_url=inst.http, headers=inst.headers, timeout=30) as http:
        writer.start()
        url = f"/v1/casper/c1/{'events' if path == 'events' else 'events/main'}?start_from=5"
        with http.stream("GET", url) as r:
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
            stream = events(r)
            first = next(stream)
            assert (first.id, json.loads(first.data)) == (None, {"ApiVersion": sse_routes.API_VERSION})
            done.wait(60)
            expected = _stored(inst, path, 5)
            got = [e for e in _read_until(stream, expected[-1][0]) if not e.comment]
    writer.join()
    assert [(e.id, e.data) for e in got] == expected  # every one, once, in order, the node's JSON as received
    ring_first = inst.hub("c1").ring_first()
    assert ring_first is None or expected[0][0] < ring_first  # the replay began in the store, not the ring
    wait_for(lambda: inst.hub("c1").stats.sse_clients == 0, "the stream's client removed")


@pytest.mark.parametrize("inst", [0], indirect=True, ids=["no-ring"])
def test_live_arrivals_during_the_store_read_are_sent_once(inst: Instance, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a ring (or with an empty one) the store is read up to its end, which may hold entities that also
    reached the client's live queue since it registered: each is sent once."""
    sink = inst.sink("c1", flush_s=0.002)
    sink.write("n1:9999", chain(1, 5, deploys=1))
    sink.flush()
    real = sse_routes._store_page
    hub = inst.hub("c1")

    def store_page_after_more_arrived(*args: Any) -> Any:  # on the server's thread pool, once
        if not done.is_set():
            sink.write("n1:9999", chain(6, 5, deploys=1))  # stored, then published to the client's queue
            sink.flush()
            wait_for(lambda: hub.last_out == 20, "the new entities routed to the live queue")
            done.set()
        return real(*args)

    done = threading.Event()
    monkeypatch.setattr(sse_routes, "_store_page", store_page_after_more_arrived)
    with httpx.Client(base_url=inst.http, headers=inst.headers, timeout=30) as http, \
            http.stream("GET", "/v1/casper/c1/events/main?start_from=3") as r:  # fmt: skip
        stream = events(r)
        next(stream)
        got = _read_until(stream, 20)
        sink.write("n1:9999", chain(11, 1, deploys=1))
        got += _read_until(stream, 22)
    sink.flush()  # published before the store has it (the journal: docs/casper.md "Journal")
    assert [(e.id, e.data) for e in got] == _stored(inst, "main", 3)
    assert [e.id for e in got] == list(range(3, 23))


def test_channels_keepalives_and_a_client_that_leaves(inst: Instance, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sse_routes, "KEEPALIVE_S", 0.05)
    hub = inst.hub("c1")
    with httpx.Client(base_url=inst.http, headers=inst.headers, timeout=30) as http:
        with http.stream("GET", "/v1/casper/c1/events/sigs") as r:
            stream = events(r)
            assert json.loads(next(stream).data) == {"ApiVersion": sse_routes.API_VERSION}
            assert next(stream).comment  # a ':' keep-alive while nothing happens
            inst.sink("c1", flush_s=0.002).write("n1:9999", chain(1, 2, deploys=1, sigs=2))
            sigs = [e for e in _read_until(stream, 8) if not e.comment]
            assert [json.loads(e.data)["FinalitySignature"]["era_id"] for e in sigs] == [0] * 4
            assert [e.id for e in sigs] == [5, 6, 7, 8]  # the blocks and deploys (1–4) are main's
            assert hub.stats.sse_clients == 1
        wait_for(lambda: hub.stats.sse_clients == 0, "the client that left removed")  # midway, nothing left
        with http.stream("GET", "/events/main?start_from=1", headers={"Authorization": ""}) as r:  # root: public
            main = [e for e in _read_until(events(r), 4) if e.id is not None]
        assert [e.id for e in main] == [1, 2, 3, 4]


def test_the_sidecars_refusals(inst: Instance) -> None:
    with httpx.Client(base_url=inst.http, headers=inst.headers, timeout=30) as http:
        for query in ("start_from=abc", "start_from=1&start_from=2", "foo=1", "start_from=4294967296",
                      "start_from=-1", "start_from=1&x=2", "start_from="):  # fmt: skip
            r = http.get(f"/v1/casper/c1/events/main?{query}")
            assert r.status_code == 422 and r.json()["error"] == sse_routes.BAD_QUERY, (query, r.text)
        r = http.get("/v1/casper/c1/events/nope")
        assert r.status_code == 404 and r.json()["error"] == sse_routes.BAD_PATH
        assert http.get("/v1/casper/c1/events/main", headers={"Authorization": ""}).status_code == 401
        assert http.get("/v1/casper/other/events/main").status_code == 404
        with http.stream("GET", "/v1/casper/c1/events/main") as a, http.stream("GET", "/v1/casper/c1/events") as b:
            assert a.status_code == b.status_code == 200
            r = http.get("/v1/casper/c1/events/deploys")
            assert r.status_code == 503 and r.json()["error"] == sse_routes.BUSY


def test_a_multi_line_payload_is_sent_as_data_lines() -> None:
    frame = sse_routes.sse_frame(7, b'{"Step": {\n  "era_id": 3}}')
    assert frame == b'data:{"Step": {\ndata:  "era_id": 3}}\nid:7\n\n'
    assert sse_routes.sse_frame(None, b'{"ApiVersion":"1.5.2"}') == b'data:{"ApiVersion":"1.5.2"}\n\n'


def test_a_stream_that_never_started_leaves_no_client(tmp_path: Path) -> None:
    """A client that leaves before its response's first byte: the stream's generator never runs (so neither does
    its ``finally``), and the client's registration goes with the stream object."""
    import asyncio
    import gc

    from starlette.requests import Request

    from bftscope.api.context import ApiContext
    from bftscope.families.casper.serving import hub_for

    async def run() -> None:
        ctx = ApiContext(store=None, settings=Settings(data_dir=tmp_path), jobs=None)  # type: ignore[arg-type]
        hub = hub_for(ctx, "c1")
        request = Request({"type": "http", "method": "GET", "path": "/events/main", "query_string": b"",
                           "headers": []})  # fmt: skip
        response = await sse_routes._open(request, ctx, "c1", "main")
        assert hub.stats.sse_clients == 1
        del response
        gc.collect()
        await asyncio.sleep(0)
        assert hub.stats.sse_clients == 0
        await hub.close()

    asyncio.run(run())
