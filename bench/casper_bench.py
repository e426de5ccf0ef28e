"""Casper events persisted and re-broadcast: events/s, receipt → WebSocket subscriber latency, memory.

One ``bftscope`` API instance (the app under uvicorn on 127.0.0.1, in this process) over a fresh embedded store,
with a Casper network whose :class:`~bftscope.families.casper.sink.CasperSink` publishes through the instance's
broadcaster (:func:`~bftscope.families.casper.publish.attach_publisher`, as ``bftscope serve`` wires it). A
node process offers ``--rate`` events/s for ``--seconds``: node-shaped JSON, per height one BlockAdded,
``--deploys`` DeployProcessed of ``--accounts`` accounts and ``--sigs`` FinalitySignatures. ``--feed sse`` (the
default): the node serves ``/events/main`` and ``/events/sigs`` over HTTP on 127.0.0.1 and the network is followed
as ``bftscope serve`` follows it (``FAMILY.follower``: SSE, the ApiVersion handshake, parsing and decoding in the
follower's child process, or in this one with ``--follower here``). ``--feed pipe``: the frames come over a pipe
and this process decodes them with the real decoder (the earlier sessions' method: no SSE connection). An event's
``received_ns`` (its receipt) is when it was decoded.

WebSocket subscribers run in a separate process (``--ws-blocks`` on ``/blocks``, one per account on
``/accountDeploys/<account>``), record each frame's key and arrival time, and hand them back at the end; each
frame's latency is its arrival minus its entity's ``received_ns`` in the store (one machine, one clock), so it
covers decoding, the sink's batching, the store write, publishing, routing and the WebSocket send.

Reported per run: offered and persisted events/s (stored by the sink over the production time plus the time it
took to catch up), frames received against expected, latency p50/p99/max, the CPU of this process, of the
follower's child and of the serving instance, this process's RSS every second (server, store, sink), each run in
a fresh process. Prints the medians of ``--runs`` runs and writes
``bench/out/casper.json``.

    .venv/bin/python bench/casper_bench.py --rate 21000 --seconds 20 --runs 3 --redis
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import base64
import itertools
import json
import multiprocessing as mp
import os
import queue
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import msgspec
import numpy as np
import orjson

from bftscope import runtime

HERE = Path(__file__).resolve().parent
MAX_EVENTS = 4_000_000  # what the feeder may hold in memory (see main)
OUT = HERE / "out"


def _rss_mib(pid: int | str = "self") -> float:
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _account(n: int) -> str:
    return "01" + f"{n:064x}"


_T0_MS = 1_672_560_000_000  # 2023-01-01T08:00:00Z


def _stamp(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}Z"


def _bodies(height: int, deploys: int, accounts: int, sigs: int) -> tuple[list[bytes], list[bytes]]:
    """(main channel JSON, sigs channel JSON) of one height: a block every 16.384 s, its deploys made in the
    seconds before it (each its own timestamp, as a network's are)."""
    bh = f"{height:064x}"
    block_ms = _T0_MS + height * 16_384
    dhs = [f"d{height:055x}{i:08x}" for i in range(deploys)]
    block = {"BlockAdded": {"block_hash": bh, "block": {"hash": bh, "header": {
        "parent_hash": f"{height - 1:064x}", "state_root_hash": "ab" * 32, "body_hash": "cd" * 32, "random_bit": True,
        "accumulated_seed": "ef" * 32, "era_end": None, "timestamp": _stamp(block_ms),
        "era_id": height // 100, "height": height, "protocol_version": "1.5.2"},
        "body": {"proposer": "02" + f"{height % 7:064x}", "deploy_hashes": dhs, "transfer_hashes": []},
        "proofs": []}}}  # fmt: skip
    main = [orjson.dumps(block)]
    for i, dh in enumerate(dhs):
        main.append(orjson.dumps({"DeployProcessed": {
            "deploy_hash": dh, "account": _account((height + i) % accounts),
            "timestamp": _stamp(block_ms - 1_001 * (i + 1)),
            "ttl": "30m", "dependencies": [], "block_hash": bh, "execution_result": {"Success": {
                "effect": {"operations": [], "transforms": []}, "transfers": [], "cost": "100000000"}}}}))  # fmt: skip
    sig = [orjson.dumps({"FinalitySignature": {"block_hash": bh, "era_id": height // 100, "signature": "01" + "cd" * 64,
                                               "public_key": "02" + f"{n:064x}"}}) for n in range(sigs)]  # fmt: skip
    return main, sig


# --- the subscribers' process --------------------------------------------------------------------------------
def _subscribers(base: str, routes: list[str], token: str, deflate: bool, ready: Any, stop: Any, out: str,
                 client: str = "light") -> None:  # fmt: skip
    """Subscribe to ``routes``; at the end write [(entity key, arrival epoch ns)] to ``out``. ``client``:
    "light" (:class:`_LightClient`) or "websockets" (the websockets library's client)."""
    arrivals: list[tuple[str, int]] = []

    async def library(route: str) -> None:
        from websockets.asyncio.client import connect

        async with connect(base + route, additional_headers={"Authorization": f"Bearer {token}"},
                           max_size=None, ping_interval=None,
                           compression="deflate" if deflate else None) as ws:  # fmt: skip
            ready.put(route)
            while True:
                try:
                    msg = await asyncio.wait_for(ws.recv(), 0.5)
                except TimeoutError:
                    if stop.is_set():
                        return
                    continue
                now = time.time_ns()
                d = orjson.loads(msg)
                arrivals.append((d.get("blockHash") or d.get("deployHash"), now))

    async def light(route: str) -> None:
        loop = asyncio.get_running_loop()
        url = urlsplit(base + route)
        host, port, path = url.hostname or "127.0.0.1", url.port or 80, url.path
        done = loop.create_future()
        transport, proto = await loop.create_connection(lambda: _LightClient(host, path, token, arrivals, done),
                                                        host, port)  # fmt: skip
        await proto.upgraded
        ready.put(route)
        while not stop.is_set() and not done.done():
            await asyncio.sleep(0.5)
        transport.close()

    async def main() -> None:
        one = light if client == "light" and not deflate else library
        await asyncio.gather(*(one(r) for r in routes))

    asyncio.run(main())
    Path(out).write_bytes(orjson.dumps(arrivals))


class _LightClient(asyncio.Protocol):
    """A minimal WebSocket client (RFC 6455, no extensions) for the bench's subscribers: it records each text
    message's entity key and the time its bytes arrived, answers pings and nothing else. The websockets
    library's client costs ~25 us of CPU per message, on the same two cores as the pipeline it measures; this one
    a few."""

    def __init__(self, host: str, path: str, token: str, arrivals: list[tuple[str, int]], done: Any) -> None:
        self.host, self.path, self.token, self.arrivals, self.done = host, path, token, arrivals, done
        self.upgraded: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.buf = bytearray()
        self.parts: list[bytes] = []

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        key = base64.b64encode(os.urandom(16)).decode()
        auth = f"Authorization: Bearer {self.token}\r\n" if self.token else ""
        transport.write((f"GET {self.path} HTTP/1.1\r\nHost: {self.host}\r\nUpgrade: websocket\r\n"
                         f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                         f"{auth}\r\n").encode())  # fmt: skip

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(None)
        if not self.upgraded.done():
            self.upgraded.set_exception(ConnectionError(f"{self.path}: closed before the upgrade"))

    def data_received(self, data: bytes) -> None:
        now = time.time_ns()  # when the bytes arrived: what the latency is measured to
        buf = self.buf
        buf += data
        if not self.upgraded.done():
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            if not buf.startswith(b"HTTP/1.1 101"):
                self.upgraded.set_exception(ConnectionError(f"{self.path}: {bytes(buf[:end])!r}"))
                self.transport.close()
                return
            del buf[: end + 4]
            self.upgraded.set_result(None)
        pos = 0
        while len(buf) - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1]
            n, head = b1 & 0x7F, 2
            if n == 126:
                if len(buf) - pos < 4:
                    break
                n, head = int.from_bytes(buf[pos + 2 : pos + 4], "big"), 4
            elif n == 127:
                if len(buf) - pos < 10:
                    break
                n, head = int.from_bytes(buf[pos + 2 : pos + 10], "big"), 10
            if len(buf) - pos < head + n:
                break
            payload = bytes(buf[pos + head : pos + head + n])
            pos += head + n
            op = b0 & 0x0F
            if op in (0, 1, 2):
                self.parts.append(payload)
                if b0 & 0x80:  # the last fragment
                    d = orjson.loads(b"".join(self.parts))
                    self.parts = []
                    self.arrivals.append((d.get("blockHash") or d.get("deployHash"), now))
            elif op == 9:  # ping: a pong with the same payload (masked, as a client's frames are)
                mask = os.urandom(4)
                self.transport.write(bytes([0x8A, 0x80 | len(payload)]) + mask
                                     + bytes(c ^ mask[i % 4] for i, c in enumerate(payload)))  # fmt: skip
            elif op == 8:
                self.transport.close()
        del buf[:pos]


# --- the node's process ---------------------------------------------------------------------------------------
def _frames(first: int, last: int, deploys: int, accounts: int, sigs: int) -> Iterator[tuple[str, str, bytes]]:
    for h in range(first, last + 1):
        main, sig = _bodies(h, deploys, accounts, sigs)
        yield from (("main", str(h * 1000 + i), raw) for i, raw in enumerate(main))
        yield from (("sigs", str(h * 1000 + i), raw) for i, raw in enumerate(sig))


def _feed(conn: Any, rate: int, heights: int, deploys: int, accounts: int, sigs: int, live: bool = False) -> None:
    """Send ``heights`` heights' frames at ``rate`` events/s, what is due every 10 ms; an empty message ends.
    Every frame is made before the first is sent (making the JSON is the node's work: it must not take the
    measured process's CPU), which holds them all in this process's memory (~4 KB each); ``live`` (long runs)
    makes each when it is due instead, which costs the machine ~0.1 core beside the pipeline."""
    enc = msgspec.msgpack.Encoder()
    made = _frames(1, heights, deploys, accounts, sigs)
    frames: list[tuple[str, str, bytes]] = [] if live else list(made)
    total = heights * (1 + deploys + sigs)
    conn.send_bytes(b"ready")
    t0 = time.perf_counter()
    sent = 0
    while sent < total:
        due = min(total, int((time.perf_counter() - t0) * rate))
        if due > sent:
            batch = list(itertools.islice(made, due - sent)) if live else frames[sent:due]
            conn.send_bytes(enc.encode(batch))
            sent = due
        time.sleep(0.01)
    conn.send_bytes(b"")


def _node(port_conn: Any, rate: int, heights: int, deploys: int, accounts: int, sigs: int, live: bool = False) -> None:
    """A Casper node on 127.0.0.1 (``--feed sse``): ``/events/main`` and ``/events/sigs`` as SSE (HTTP/1.1 chunked,
    ``ApiVersion`` first, ``id:`` per event). Once both channels are connected it sends ``rate`` events/s, what
    is due every 10 ms, each channel its share; then reports the count and keeps the connections open until told.
    Every event's bytes are made before the clock starts unless ``live`` (as ``_feed``)."""
    from bftscope.families.casper.replay.wire import event_bytes, http_chunk

    made = ((ch, event_bytes(raw, int(id_), b"\n")) for ch, id_, raw in _frames(1, heights, deploys, accounts, sigs))
    frames: list[tuple[str, bytes]] = [] if live else list(made)
    total = heights * (1 + deploys + sigs)
    writers: dict[str, asyncio.StreamWriter] = {}
    both = asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        path = head.split(b" ", 2)[1].split(b"?")[0].decode()
        channel = path.rsplit("/", 1)[-1]
        if channel not in ("main", "sigs") or channel in writers:
            writer.write(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n")
            writer.close()
            return
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
                     b"transfer-encoding: chunked\r\n\r\n" + http_chunk(b'data:{"ApiVersion":"1.5.2"}\n\n'))
        writers[channel] = writer
        if len(writers) == 2:
            both.set()
        await reader.read()  # until the follower goes

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port_conn.send(server.sockets[0].getsockname()[1])
        await both.wait()
        t0 = time.perf_counter()
        sent = 0
        while sent < total:
            due = min(total, int((time.perf_counter() - t0) * rate))
            if due > sent:
                out: dict[str, list[bytes]] = {"main": [], "sigs": []}
                for ch, data in (itertools.islice(made, due - sent) if live else frames[sent:due]):
                    out[ch].append(data)
                for ch, parts in out.items():
                    if parts:
                        writers[ch].write(http_chunk(b"".join(parts)))
                sent = due
            await asyncio.sleep(0.01)
        port_conn.send(sent)
        await asyncio.get_running_loop().run_in_executor(None, port_conn.recv)  # the bench is done
        server.close()

    asyncio.run(main())


def _produce_pipe(args: argparse.Namespace, spawn: Any, sink: Any, store: Any, heights: int) -> dict[str, Any]:
    """``--feed pipe``: a feeder process offers ``--rate`` events/s as (channel, id, JSON) frames over a pipe, every
    10 ms what is due; this process decodes them (the real decoder) and writes them to the sink, as a follower in
    this process does, without the SSE connection."""
    from bftscope.families.casper.decoder import CasperDecoder
    from bftscope.sources.base import Frame

    decoders = {"main": CasperDecoder("n1:9999", "main"), "sigs": CasperDecoder("n1:9999", "sigs")}
    recv_end, send_end = spawn.Pipe(duplex=False)
    feeder = spawn.Process(target=_feed, args=(send_end, args.rate, heights, args.deploys, args.accounts, args.sigs,
                                               args.live_frames))  # fmt: skip
    feeder.start()
    send_end.close()  # the feeder's end only: a feeder that dies is an EOF here, not a wait forever
    try:
        if recv_end.recv_bytes() != b"ready":
            raise RuntimeError("the feeder did not start")
    except EOFError:
        raise RuntimeError(f"the feeder died before its first frame (exit code {feeder.exitcode}; -9: "
                           "killed, perhaps for memory)") from None  # fmt: skip
    offered, t0 = 0, 0.0
    frames = msgspec.msgpack.Decoder(list[tuple[str, str, bytes]])
    while True:
        data = recv_end.recv_bytes()
        if not data:
            break
        if not t0:
            t0 = time.perf_counter()  # the node's first frames (not the feeder's start-up)
        batch = []
        for channel, id_, raw in frames.decode(data):
            batch.extend(decoders[channel].feed(Frame(raw, id=id_)))
        offered += len(batch)
        if batch:
            sink.write("n1:9999", batch)
    feeder.join(timeout=30)
    produced_s = time.perf_counter() - t0
    sink.flush()
    return {"offered": offered, "produced_s": produced_s, "persisted_s": time.perf_counter() - t0,
            "follower_cpu_s": 0.0}  # fmt: skip


def _produce_sse(args: argparse.Namespace, spawn: Any, sink: Any, store: Any, heights: int) -> dict[str, Any]:
    """``--feed sse`` (the default): a node process serves ``/events/main`` and ``/events/sigs`` on 127.0.0.1 and
    the network is followed as ``bftscope serve`` follows it (``FAMILY.follower``): SSE connections, the
    handshake, parsing and decoding in the follower's child process (``--follower here``: in this process), the
    events handed to the sink. An event's receipt is when the follower decoded it."""
    from bftscope.config import Settings
    from bftscope.families.casper.family import FAMILY

    total = heights * (1 + args.deploys + args.sigs)
    mine, theirs = spawn.Pipe()
    node = spawn.Process(target=_node, args=(theirs, args.rate, heights, args.deploys, args.accounts, args.sigs,
                                             args.live_frames), daemon=True)  # fmt: skip
    node.start()
    if not mine.poll(600):
        raise RuntimeError(f"the node did not start (exit code {node.exitcode})")
    port = mine.recv()
    settings = Settings(data_dir=Path(tempfile.gettempdir()), casper_follower_process=args.follower == "child")
    urls = [f"http://127.0.0.1:{port}/events/main", f"http://127.0.0.1:{port}/events/sigs"]
    follower = FAMILY.follower("bench", urls, sink, store=store, run="net:bench", settings=settings)
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True, name="follower-loop").start()
    running = asyncio.run_coroutine_threadsafe(follower.run(), loop)
    deadline = time.monotonic() + 60
    while not all(n.active for n in follower.status().nodes):
        if running.done() or time.monotonic() > deadline:
            raise RuntimeError(f"the follower did not connect: {follower.status()}")
        time.sleep(0.005)
    t0 = time.perf_counter()  # the node starts sending once both channels are connected
    offered = mine.recv()
    produced_s = time.perf_counter() - t0
    while follower.status().events_total < offered:
        if running.done():
            raise RuntimeError(f"the follower ended early: {running.result()}")
        time.sleep(0.005)
    sink.flush()
    persisted_s = time.perf_counter() - t0
    process = getattr(follower, "_process", None)
    child_cpu = _cpu_s(process.pid) if process is not None else 0.0
    asyncio.run_coroutine_threadsafe(follower.stop(), loop).result(timeout=60)
    running.result(timeout=60)
    loop.call_soon_threadsafe(loop.stop)
    mine.send("done")
    node.join(timeout=30)
    if offered != total:
        raise RuntimeError(f"the node sent {offered} events of {total}")
    return {"offered": offered, "produced_s": produced_s, "persisted_s": persisted_s, "follower_cpu_s": child_cpu}


# --- one run ---------------------------------------------------------------------------------------------------
def run_once(args: argparse.Namespace) -> dict[str, Any]:
    runtime.apply()  # as `bftscope serve` does (bftscope/runtime.py: the GIL switch interval)
    if args.switch_interval_ms:
        sys.setswitchinterval(args.switch_interval_ms / 1000)
    tracer = None
    if args.trace:
        from casper_trace import Tracer

        tracer = Tracer()
        tracer.install()

    tmp = Path(tempfile.mkdtemp(prefix="casper-bench-"))
    inst = _two_instances(tmp) if args.redis else _one_instance(tmp)
    ctx, sink, ws_base, token = inst["ctx"], inst["sink"], inst["ws_base"], inst["token"]

    routes = ["/blocks"] * args.ws_blocks + [f"/accountDeploys/{_account(a)}" for a in range(args.accounts)]
    spawn = mp.get_context("spawn")
    ready, stop = spawn.Queue(), spawn.Event()
    arrivals_file = tmp / "arrivals.json"
    subs = spawn.Process(target=_subscribers, args=(ws_base, routes, token, args.deflate, ready, stop,
                                                    str(arrivals_file), args.ws_client))  # fmt: skip
    subs.start()
    for _ in routes:
        ready.get(timeout=60)
    inst["wait_subscribed"](len(routes))
    hub = inst["hub"]

    per_height = 1 + args.deploys + args.sigs
    heights = int(args.rate * args.seconds / per_height)
    rss: list[float] = []
    duck: list[float] = []  # DuckDB's own memory (buffer pool: cached table and index blocks)
    sampling = threading.Event()

    other: list[float] = []  # the serving instance's RSS (--redis)

    def sample() -> None:
        while not sampling.wait(1.0):
            rss.append(_rss_mib())
            if inst.get("pid"):
                other.append(_rss_mib(inst["pid"]))
            duck.append(float(ctx.store.query("SELECT sum(memory_usage_bytes) FROM duckdb_memory()")[0][0]) / 2**20)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    cpu0, other_cpu0 = time.process_time(), _cpu_s(inst.get("pid"))
    produce = _produce_pipe if args.feed == "pipe" else _produce_sse
    fed = produce(args, spawn, sink, ctx.store, heights)
    offered, produced_s, persisted_s = fed["offered"], fed["produced_s"], fed["persisted_s"]
    other_cpu_s = _cpu_s(inst.get("pid")) - other_cpu0
    cpu_s = time.process_time() - cpu0
    time.sleep(1.0)
    stop.set()
    subs.join(timeout=120)
    sampling.set()
    arrivals = orjson.loads(arrivals_file.read_bytes())
    published = ctx.store.query(
        "SELECT key, received_ns, out_id FROM casper_payloads WHERE type IN ('BlockAdded', 'DeployProcessed')")
    received = {str(k): int(ns) for k, ns, _ in published}
    lat = np.array([(ns - received[k]) / 1e6 for k, ns in arrivals if k in received])
    traced = None
    if tracer is not None:
        out_ids = {str(k): int(o) for k, _, o in published}
        frames = [(out_ids[k], received[k], ns) for k, ns in arrivals if k in received]
        traced = tracer.report(Path(args.trace), frames)
    expected = heights * args.ws_blocks + heights * args.deploys
    stats = sink.stats
    out = {
        "offered_events": offered, "offered_per_s": offered / produced_s, "stored_entities": stats.stored,
        "persisted_per_s": stats.received / persisted_s, "catch_up_s": persisted_s - produced_s,
        "cpu_cores": cpu_s / persisted_s, "follower_cpu_cores": fed["follower_cpu_s"] / persisted_s,
        "writes": stats.writes, "write_errors": stats.write_errors, "frames": len(arrivals),
        "journaled": getattr(sink, "journaled", False), "applies": stats.applies, "apply_errors": stats.apply_errors,
        "last_apply_ms": stats.last_apply_s * 1000,
        "frames_expected": expected, "ws_cut": hub.stats.cut if hub else None,
        "missed": hub.stats.missed if hub else None,
        "server_cpu_cores": other_cpu_s / persisted_s if args.redis else None,
        "server_rss_first_mib": statistics.median(other[1:4]) if len(other) > 4 else None,
        "server_rss_last_mib": statistics.median(other[-3:]) if other else None,
        "p50_ms": float(np.percentile(lat, 50)), "p99_ms": float(np.percentile(lat, 99)), "max_ms": float(lat.max()),
        "rss_mib": rss, "rss_first_mib": statistics.median(rss[1:4]) if len(rss) > 4 else None,
        "rss_last_mib": statistics.median(rss[-3:]) if rss else None, "duckdb_mib": duck,
        "duckdb_first_mib": statistics.median(duck[1:4]) if len(duck) > 4 else None,
        "duckdb_last_mib": statistics.median(duck[-3:]) if duck else None, "trace": traced,
    }  # fmt: skip
    sink.close()
    inst["close"]()
    shutil.rmtree(tmp, ignore_errors=True)  # the store, the journal and the serving instance's store: GBs a run
    return out


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _one_instance(tmp: Path) -> dict[str, Any]:
    """The API (uvicorn in a thread of this process) over the store the sink writes: in-process fan-out."""
    import uvicorn

    from bftscope.api.app import create_app
    from bftscope.config import Settings
    from bftscope.control.networks import create_network
    from bftscope.control.users import create_user
    from bftscope.families.casper.family import FAMILY
    from bftscope.families.casper.publish import attach_publisher
    from bftscope.families.casper.serving import hubs_of

    app = create_app(Settings(data_dir=tmp, rate_limit_enabled=False, follow_networks=False))
    port = _free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on",
                                        ws_ping_interval=None))  # fmt: skip
    server = threading.Thread(target=srv.run, daemon=True)
    server.start()
    while not srv.started:
        time.sleep(0.02)
    ctx = app.state.ctx
    user, token = create_user(ctx.store, "bench", "bench@corp.io", is_admin=True)
    create_network(ctx.store, user.id, "bench", "casper", ["http://127.0.0.1:9"], {}, max_endpoints=8,
                   max_per_user=20)  # fmt: skip
    sink = FAMILY.live_sink(ctx.store, "net:bench")  # as `bftscope serve` makes it
    attach_publisher(sink, ctx.broadcaster, "bench")
    inst: dict[str, Any] = {}

    def wait_subscribed(n: int) -> None:  # the hub is made on the server's loop by the first subscriber
        while (hub := hubs_of(ctx).hubs.get("bench")) is None or hub.stats.ws_clients < n:
            time.sleep(0.01)
        inst["hub"] = hub

    def close() -> None:
        srv.should_exit = True
        server.join(timeout=30)

    inst |= {"ctx": ctx, "sink": sink, "ws_base": f"ws://127.0.0.1:{port}/v1/casper/bench", "token": token,
             "hub": None, "wait_subscribed": wait_subscribed, "close": close}  # fmt: skip
    return inst


def _two_instances(tmp: Path) -> dict[str, Any]:
    """Instance A (this process: the store, the sink and a Redis broadcaster, no HTTP) and instance B (``bftscope
    serve`` in its own process, serving the root network's WebSocket routes) sharing a throw-away redis-server."""
    import subprocess

    import httpx
    import redis

    from bftscope.config import Settings
    from bftscope.families.casper.family import FAMILY
    from bftscope.families.casper.publish import attach_publisher, topic_of
    from bftscope.live.broadcast import RedisBroadcaster
    from bftscope.store import open_store

    rport, bport = _free_port(), _free_port()
    rsrv = subprocess.Popen(["redis-server", "--port", str(rport), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no"], stdout=subprocess.DEVNULL)  # fmt: skip
    url = f"redis://127.0.0.1:{rport}/0"
    r = redis.Redis.from_url(url)
    while True:
        try:
            r.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    env = {**os.environ, "BFTSCOPE_DATA_DIR": str(tmp / "b"), "BFTSCOPE_REDIS_URL": url,
           "BFTSCOPE_CASPER_ROOT_NETWORK": "bench", "BFTSCOPE_FOLLOW_NETWORKS": "false",
           "BFTSCOPE_RATE_LIMIT_ENABLED": "false"}  # fmt: skip
    cli = str(Path(sys.executable).parent / "bftscope")
    log_path = tmp / "serve.log"  # a file, not a pipe nobody reads: a full pipe would stall the server
    b = subprocess.Popen([cli, "serve", "--port", str(bport), "--local"], env=env, stdout=subprocess.DEVNULL,
                         stderr=log_path.open("wb"))  # fmt: skip
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{bport}/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            if b.poll() is not None or time.monotonic() > deadline:
                rsrv.terminate()
                b.kill()
                sys.exit(f"bftscope serve did not start: {log_path.read_text(errors='replace')[-2000:]}")
            time.sleep(0.1)
    store = open_store(Settings(data_dir=tmp / "a"))
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True).start()
    broadcaster = RedisBroadcaster(url)
    asyncio.run_coroutine_threadsafe(broadcaster.start(), loop).result()
    sink = FAMILY.live_sink(store, "net:bench")  # as `bftscope serve` makes it
    attach_publisher(sink, broadcaster, "bench")

    def wait_subscribed(n: int) -> None:
        while r.pubsub_numsub(topic_of("bench"))[0][1] < 1:
            time.sleep(0.05)

    def close() -> None:
        asyncio.run_coroutine_threadsafe(broadcaster.close(), loop).result()
        loop.call_soon_threadsafe(loop.stop)
        store.close()
        _stop(b, rsrv)

    atexit.register(_stop, b, rsrv)  # a run that fails on the way stops them too

    return {"ctx": type("Ctx", (), {"store": store})(), "sink": sink, "ws_base": f"ws://127.0.0.1:{bport}",
            "token": "", "hub": None, "pid": b.pid, "wait_subscribed": wait_subscribed, "close": close}  # fmt: skip


def _stop(*procs: Any) -> None:
    """SIGTERM each process, then SIGKILL one that has not exited 45 s later (it is reported)."""
    import subprocess

    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=45)
        except subprocess.TimeoutExpired:
            print(f"pid {proc.pid} did not exit 45 s after SIGTERM: killed", file=sys.stderr)
            proc.kill()
            proc.wait()


def _cpu_s(pid: int | None) -> float:
    if pid is None:
        return 0.0
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _run_child(args: argparse.Namespace, results: Any) -> None:
    results.put(run_once(args))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rate", type=int, default=20_000, help="events offered per second")
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--deploys", type=int, default=9, help="DeployProcessed per height")
    p.add_argument("--sigs", type=int, default=10, help="FinalitySignatures per height")
    p.add_argument("--accounts", type=int, default=16, help="accounts (one /accountDeploys subscriber each)")
    p.add_argument("--ws-blocks", type=int, default=4, help="subscribers of /blocks")
    p.add_argument(
        "--redis",
        action="store_true",
        help="two instances: this process stores and publishes through a throw-away redis-server, a "
        "'bftscope serve' process serves the subscribers (the root network's public routes)",
    )
    p.add_argument("--switch-interval-ms", type=float, default=0.0,
                   help="override the GIL switch interval bftscope sets (bftscope/runtime.py)")  # fmt: skip
    p.add_argument("--live-frames", action="store_true",
                   help="the feeder makes each frame when it is due instead of all before the clock starts (runs over "
                   "4 M events; costs the machine ~0.1 core)")  # fmt: skip
    p.add_argument("--ws-client", choices=("light", "websockets"), default="light",
                   help="the subscribers' WebSocket client: a minimal one (default; a few us a message) or the "
                   "websockets library's (~25 us a message, on the same cores as the pipeline)")  # fmt: skip
    p.add_argument("--feed", choices=("sse", "pipe"), default="sse",
                   help="sse (default): a node process serves SSE and the network is followed as `bftscope "
                   "serve` follows it; pipe: frames over a pipe, decoded in the writer's process (no SSE "
                   "connection)")  # fmt: skip
    p.add_argument("--follower", choices=("child", "here"), default="child",
                   help="--feed sse: the follower in a child process (the default, as serve runs it) or in the "
                   "writer's process")  # fmt: skip
    p.add_argument("--trace", metavar="PATH",
                   help="time what can hold up the writer (bench/casper_trace.py) and split each frame's latency "
                   "into receipt -> publish and publish -> subscriber; per-frame figures to PATH.npz, timed calls "
                   "to PATH.json, a summary in each run's result (with --runs > 1, the last run's files)")  # fmt: skip
    p.add_argument(
        "--deflate",
        action="store_true",
        help="subscribers offer permessage-deflate (as browsers do): the server compresses every frame",
    )
    args = p.parse_args()
    if args.rate * args.seconds > MAX_EVENTS and not args.live_frames:
        p.error(f"--rate x --seconds is over {MAX_EVENTS:,} events: the feeder makes every frame before the "
                "clock starts and holds them (~4 KB each: 6.3 M were killed for memory on 24 GiB); --live-frames makes "
                "them as they are due")  # fmt: skip
    runs = []
    spawn = mp.get_context("spawn")
    for i in range(args.runs):  # each run in a fresh process: its memory is its own
        results = spawn.Queue()
        proc = spawn.Process(target=_run_child, args=(args, results))
        proc.start()
        while True:  # a run that fails ends the bench instead of leaving it waiting
            try:
                r = results.get(timeout=5)
                break
            except queue.Empty:
                if not proc.is_alive():
                    sys.exit(f"run {i + 1} failed (exit code {proc.exitcode})")
        proc.join(timeout=120)
        runs.append(r)
        series = ("rss_mib", "duckdb_mib", "trace")
        brief = {k: (round(v, 1) if isinstance(v, float) else v) for k, v in r.items() if k not in series}
        print(f"run {i + 1}: {json.dumps(brief)}", file=sys.stderr)
        if r.get("trace"):
            print(f"run {i + 1} trace: {json.dumps(r['trace'])}", file=sys.stderr)
    keys = ["offered_per_s", "persisted_per_s", "catch_up_s", "cpu_cores", "p50_ms", "p99_ms", "max_ms",
            "rss_first_mib", "rss_last_mib", "duckdb_first_mib", "duckdb_last_mib", "server_cpu_cores",
            "server_rss_first_mib", "server_rss_last_mib"]  # fmt: skip
    medians = {k: round(statistics.median(r[k] for r in runs), 1) for k in keys if all(r[k] is not None for r in runs)}
    medians |= {"frames_ok": all(r["frames"] == r["frames_expected"] for r in runs),
                "load_average": os.getloadavg(), "cpus": os.cpu_count()}  # fmt: skip
    OUT.mkdir(exist_ok=True)
    (OUT / "casper.json").write_text(json.dumps({"args": vars(args), "runs": runs, "medians": medians}, indent=1))
    print(json.dumps(medians))


if __name__ == "__main__":
    main()
