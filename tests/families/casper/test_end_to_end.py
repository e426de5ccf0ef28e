"""Casper end to end, every part a real process: three ``bftscope casper replay --generate`` nodes that cut their
connections (``--drop-every``), one ``bftscope serve`` (its own data dir, a free port, token auth) following them
as a network created by ``POST /v1/networks``, a WebSocket subscriber on ``/v1/casper/{network}/blocks`` and an
SSE reader on ``/v1/casper/{network}/events/main``, both connected before the nodes start. What reaches the
subscribers, and what REST and the analytics answer, is compared with the generator's ground truth."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from websockets.sync.client import connect

from bftscope.families.casper.api.shapes import block_of
from bftscope.families.casper.decoder import CasperDecoder
from bftscope.families.casper.model import CHANNELS
from bftscope.families.casper.synthetic import generate
from bftscope.sources.base import Frame
from tests.families.casper.servers import free_port, wait_for
from tests.families.casper.sse_lines import Event, events

EVENTS, NODES, SEED = 1500, 3, 11
CLI = "from bftscope.cli import main; main()"


def _spawn(args: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    with log.open("ab") as err:
        return subprocess.Popen([sys.executable, "-c", CLI, *args], env=env, stdout=subprocess.DEVNULL, stderr=err)


def _stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(30)


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """A real ``bftscope serve`` and an admin's token header."""
    port = free_port()
    env = {**os.environ, "BFTSCOPE_DATA_DIR": str(tmp_path / "data"), "BFTSCOPE_RATE_LIMIT_ENABLED": "false"}
    proc = _spawn(["serve", "--host", "127.0.0.1", "--port", str(port)], tmp_path / "serve.log", env)
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        assert proc.poll() is None, (tmp_path / "serve.log").read_text()
        try:
            return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_for(up, "bftscope serve to answer /healthz", 60)
        made = httpx.post(f"{url}/v1/users", json={"username": "root1", "email": "root1@corp.io"})
        assert made.status_code == 201, made.text
        yield url, {"Authorization": f"Bearer {made.json()['token']}"}
    finally:
        _stop(proc)


def _key(data: str, out_id: int) -> tuple[str, str]:
    """(type, key) of a re-broadcast main-channel event (a Shutdown's key is per node: its type alone counts)."""
    (event,) = CasperDecoder("e2e", "main").feed(Frame(data=data.encode(), id=str(out_id)))
    return event.type, event.key if event.type != "Shutdown" else ""


def _truth_blocks(synth: Any) -> dict[str, dict[str, Any]]:
    """Block hash → the seed's JSON of it, from the generated payloads."""
    decoder, out = CasperDecoder("truth", "main"), {}
    for stream in synth.streams:
        for payload in stream:
            if payload.startswith(b'{"BlockAdded"'):
                (event,) = decoder.feed(Frame(data=payload, id="1"))
                out[event.key] = block_of(event.fields)
    return out


class Reader(threading.Thread):
    """Collects what a subscription sends until ``want`` items arrived (or it is closed)."""

    def __init__(self, target: Any) -> None:
        super().__init__(daemon=True)
        self.items: list[Any] = []
        self.error: BaseException | None = None
        self._target = target

    def run(self) -> None:
        try:
            self._target(self.items)
        except BaseException as exc:  # reported by the test
            self.error = exc


def test_three_replayed_nodes_through_serve_to_subscribers_rest_and_analytics(
    serve: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    url, h = serve
    synth = generate(EVENTS, nodes=NODES, seed=SEED)
    blocks = _truth_blocks(synth)
    assert set(blocks) == synth.truth["BlockAdded"]
    main_types = [t for t in CHANNELS["main"] if t in synth.truth]
    main_truth = {(t, k) for t in main_types if t != "Shutdown" for k in synth.truth[t]}
    main_total = len(main_truth) + len(synth.truth["Shutdown"])

    ports = [free_port() for _ in range(NODES)]
    body = {"name": "e2e", "chain": "casper", "endpoints": [f"http://127.0.0.1:{p}" for p in ports]}
    created = httpx.post(f"{url}/v1/networks", json=body, headers=h)
    assert created.status_code == 201, created.text
    base = f"{url}/v1/casper/e2e"

    stack = contextlib.ExitStack()
    ws = stack.enter_context(connect(f"ws://{url.removeprefix('http://')}/v1/casper/e2e/blocks", additional_headers=h))
    sse = stack.enter_context(httpx.Client(timeout=httpx.Timeout(30.0)))
    response = stack.enter_context(sse.stream("GET", f"{base}/events/main", headers=h))
    assert response.status_code == 200
    frames = events(response)
    hello = next(frames)
    assert hello.id is None and json.loads(hello.data) == {"ApiVersion": "1.5.2"}

    def ws_read(items: list[Any]) -> None:
        while len({b["blockHash"] for b in items}) < len(blocks):
            items.append(json.loads(ws.recv(timeout=60)))

    def sse_read(items: list[Event]) -> None:
        for ev in frames:
            if not ev.comment:
                items.append(ev)
            if len(items) >= main_total:
                return

    readers = [Reader(ws_read), Reader(sse_read)]
    for r in readers:
        r.start()
    env = {**os.environ}
    nodes = [_spawn(["casper", "replay", "--generate", str(EVENTS), "--nodes", str(NODES), "--node", str(k),
                     "--listen", f"127.0.0.1:{port}", "--seed", str(SEED), "--drop-every", "60", "--batch",
                     str(1 + k)], tmp_path / f"node{k}.log", env)
             for k, port in enumerate(ports)]  # fmt: skip
    try:
        for r in readers:
            r.join(60)
            assert not r.is_alive() and r.error is None, r.error
        ws_items, sse_items = readers[0].items, readers[1].items
        # the subscribers stay connected until everything is stored: nothing more arrives for them. REST reads
        # the store, which inserts what the journal made durable a moment after it was published (docs/casper.md
        # "Journal"): it holds every block within a few seconds
        deadline = time.monotonic() + 15
        while (items := httpx.get(f"{base}/blocks", params={"limit": 1}, headers=h).json()["itemCount"]) < len(
                blocks) and time.monotonic() < deadline:  # fmt: skip
            time.sleep(0.1)
        assert items == len(blocks)
        with pytest.raises(TimeoutError):
            ws_items.append(json.loads(ws.recv(timeout=0.5)))
    finally:
        stack.close()
        for proc in nodes:
            _stop(proc, signal.SIGINT)  # Ctrl-C: the node logs its connections and drops

    # every block once, as the seed's JSON
    assert len(ws_items) == len(blocks)
    assert {b["blockHash"]: b for b in ws_items} == blocks
    # every main-channel entity once, with strictly increasing ids
    ids = [e.id if e.id is not None else -1 for e in sse_items]
    assert min(ids) >= 1 and all(a < b for a, b in itertools.pairwise(ids))
    keys = [_key(e.data, e.id or 0) for e in sse_items]
    assert {k for k in keys if k[0] != "Shutdown"} == main_truth and len(keys) == main_total
    # the nodes did cut their connections
    dropped = [int(log.read_text().split(" dropped)")[0].rsplit(", ", 1)[-1])
               for log in sorted(tmp_path.glob("node*.log"))]  # fmt: skip
    assert sum(dropped) > 0, dropped

    # REST agrees with the truth: every block, walked with keyset pages
    got: list[dict[str, Any]] = []
    cursor = ""
    while cursor is not None:
        page = httpx.get(f"{base}/blocks", params={"cursor": cursor, "limit": 100}, headers=h).json()
        got += page["data"]
        cursor = page["next_cursor"]
    assert len(got) == len(blocks)
    assert {b["blockHash"]: b for b in got} == {k: {f: v for f, v in b.items() if f != "deploys"}
                                                 for k, b in blocks.items()}  # fmt: skip
    heights = sorted(b["height"] for b in blocks.values())
    stamps = np.array([np.datetime64(b["timestamp"].rstrip("Z"), "ms").astype(np.int64)
                       for b in sorted(blocks.values(), key=lambda b: b["height"])])  # fmt: skip
    consecutive = np.diff(heights) == 1
    intervals = np.diff(stamps)[consecutive]
    bt = httpx.get(f"{base}/analytics/blocktimes", headers=h).json()
    assert (bt["blocks"], bt["first_height"], bt["last_height"]) == (len(blocks), heights[0], heights[-1])
    assert bt["missing_heights"] == heights[-1] - heights[0] + 1 - len(heights)
    iv = bt["intervals"]
    assert iv["count"] == len(intervals)
    assert (iv["min_ms"], iv["max_ms"]) == (float(intervals.min()), float(intervals.max()))
    assert iv["mean_ms"] == pytest.approx(float(intervals.mean()))
    assert iv["p50_ms"] == pytest.approx(float(np.quantile(intervals, 0.5)))

    # ?start_from=1 replays everything the live reader got, in the same order with the same ids
    with httpx.stream("GET", f"{base}/events/main", params={"start_from": 1}, headers=h, timeout=30) as again:
        replay: list[Event] = []
        for ev in events(again):
            if ev.id is not None:
                replay.append(ev)
            if len(replay) == len(sse_items):
                break
    assert [(e.id, e.data) for e in replay] == [(e.id, e.data) for e in sse_items]
