"""Two API instances and one Redis (a real ``redis-server`` on a free port, started here): what instance A
ingests reaches WebSocket and SSE subscribers on instance B — each only its own channel's — and when Redis is
killed and restarted mid-stream both instances reconnect, A counts the batches it could not publish and B the
entities it never received, and what is published afterwards flows again."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
import redis
from pydantic import SecretStr
from websockets.sync.client import ClientConnection, connect

from bftscope.config import Settings
from bftscope.families.casper.publish import Batch, Entity, topic_of
from bftscope.live.broadcast.redis import ID_BYTES
from tests.families.casper.gen import account, chain, deploy_hash
from tests.families.casper.servers import free_port, serve, wait_for
from tests.families.casper.sse_lines import events

REDIS = shutil.which("redis-server") or "/usr/bin/redis-server"


class RedisServer:
    """A throw-away redis-server on 127.0.0.1:``port`` (no persistence) that a test can kill and restart."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        argv = [REDIS, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(self._pings, "redis-server to answer")

    def _pings(self) -> bool:
        import socket

        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
        return False

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=10)
            self.proc = None


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    if not os.path.exists(REDIS):
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"redis-server not found at {REDIS}")
        pytest.skip(f"redis-server not found at {REDIS} (install the redis-server package)")
    server = RedisServer(free_port())
    server.start()
    yield server
    server.stop()


def _recv(ws: ClientConnection, n: int) -> list[dict[str, Any]]:
    return [json.loads(ws.recv(timeout=20)) for _ in range(n)]


def test_what_a_ingests_reaches_subscribers_on_b_through_redis(redis_server: RedisServer, tmp_path: Path) -> None:
    def cfg(name: str) -> Settings:
        return Settings(data_dir=tmp_path / name, rate_limit_enabled=False, follow_networks=False,
                        redis_url=SecretStr(redis_server.url))  # fmt: skip

    with serve(cfg("a")) as a, serve(cfg("b")) as b, contextlib.ExitStack() as stack:
        a.add_network("c1")
        b.add_network("c1")  # B knows the network (its owner may subscribe) but follows nothing
        base = f"{b.ws}/v1/casper/c1"
        blocks = stack.enter_context(connect(f"{base}/blocks", additional_headers=b.headers))
        acct0 = stack.enter_context(connect(f"{base}/accountDeploys/{account(0)}", additional_headers=b.headers))
        deploy = stack.enter_context(connect(f"{base}/deploy/{deploy_hash(2, 1)}", additional_headers=b.headers))
        hub, bcast = b.hub("c1"), b.ctx.broadcaster
        wait_for(lambda: hub.stats.ws_clients == 3 and bcast.stats.connected and topic_of("c1") in bcast._subscribed,
                 "B subscribed to the network's Redis channel")  # fmt: skip

        sink = a.sink("c1", flush_s=0.005)
        sink.write("n1:9999", chain(1, 6, deploys=2, sigs=1))  # 6 blocks, 12 deploys (6 of account 0), 6 sigs
        sink.flush()
        assert [x["height"] for x in _recv(blocks, 6)] == [1, 2, 3, 4, 5, 6]
        got0 = _recv(acct0, 6)
        assert {x["account"] for x in got0} == {account(0)} and len({x["deployHash"] for x in got0}) == 6
        assert _recv(deploy, 1)[0]["deployHash"] == deploy_hash(2, 1)
        wait_for(lambda: hub.last_out == 24, "B routed every entity")
        assert sorted(c.sent for cs in hub._ws.values() for c in cs) == [1, 6, 6]  # nothing of other channels

        # B's SSE replays from its ring what A ingested (B's own store holds none of it)
        with httpx.Client(base_url=b.http, headers=b.headers, timeout=30) as http, \
                http.stream("GET", "/v1/casper/c1/events/sigs?start_from=1") as r:  # fmt: skip
            sigs = []
            for e in events(r):
                if e.id is not None:
                    sigs.append(e)
                if len(sigs) == 6:
                    break
        assert [e.id for e in sigs] == list(range(19, 25))
        assert all("FinalitySignature" in json.loads(e.data) for e in sigs)

        # Redis dies mid-stream: A cannot publish (counted), B loses its subscription; then Redis is back
        redis_server.stop()
        sink.write("n1:9999", chain(7, 3, deploys=2))  # 9 entities (out_id 25-33) published into the void
        sink.flush()
        wait_for(lambda: a.ctx.broadcaster.stats.unpublished >= 1, "A counted what it could not publish")
        wait_for(lambda: not bcast.stats.connected, "B noticed Redis went away")
        redis_server.start()
        wait_for(lambda: bcast.stats.connected and topic_of("c1") in bcast._subscribed, "B resubscribed")
        sink.write("n1:9999", chain(10, 2, deploys=2))  # out_id 34-39
        sink.flush()
        assert [x["height"] for x in _recv(blocks, 2)] == [10, 11]  # 7-9 were lost, never a duplicate
        wait_for(lambda: hub.last_out == 39, "B routed the entities after the restart")
        assert hub.stats.missed == 9  # B counts what it never received
        assert bcast.stats.reconnects >= 1 and a.ctx.broadcaster.stats.reconnects >= 1


_STALLED = """
import socket, sys
socks = []
for path in sys.argv[2:]:
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.sendall(f"GET {path} HTTP/1.1\\r\\nHost: x\\r\\nUpgrade: websocket\\r\\nConnection: Upgrade\\r\\n"
              "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\\r\\nSec-WebSocket-Version: 13\\r\\n\\r\\n".encode())
    head = b""
    while b"\\r\\n\\r\\n" not in head:
        head += s.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    socks.append(s)
print("ready", flush=True)
sys.stdin.read()  # never reads its sockets: killed by the test
"""


def _batch(first: int, n: int) -> bytes:
    seed = msgspec.Raw(b'{"blockHash": "' + b"ab" * 32 + b'", "pad": "' + b"x" * 800 + b'"}')
    entities = [Entity(o, "BlockAdded", str(o), "main",
                       ["blocks"] if o % 2 else ["accountDeploys:" + account(o % 4)], 1, None, None, 0, seed,
                       msgspec.Raw(b"null")) for o in range(first, first + n)]  # fmt: skip
    return b"0" * ID_BYTES + msgspec.json.encode(Batch("bench", entities))  # another instance's id


def test_serve_exits_on_sigterm_after_loaded_subscribers_vanish(redis_server: RedisServer, tmp_path: Path) -> None:
    """``bftscope serve`` (its own process, as the bench runs it) with Redis: stalled WebSocket subscribers are
    killed while batches stream in through Redis, then SIGTERM: the whole shutdown (hubs, broadcaster, store)
    ends at once. A guard of the path, not a reliable reproduction: the hang it once had (a reader whose
    cancellation redis-py lost, polling forever) came about one run in five on a busy machine; the
    deterministic regression test is tests/live/test_broadcast.py."""
    port = free_port()
    env = {**os.environ, "BFTSCOPE_DATA_DIR": str(tmp_path / "b"), "BFTSCOPE_REDIS_URL": redis_server.url,
           "BFTSCOPE_CASPER_ROOT_NETWORK": "bench", "BFTSCOPE_FOLLOW_NETWORKS": "false",
           "BFTSCOPE_RATE_LIMIT_ENABLED": "false"}  # fmt: skip
    cli = str(Path(sys.executable).parent / "bftscope")
    err = (tmp_path / "serve.err").open("wb")
    serve = subprocess.Popen([cli, "serve", "--port", str(port), "--local"], env=env, stdout=subprocess.DEVNULL,
                             stderr=err)  # fmt: skip
    subs: subprocess.Popen[bytes] | None = None
    probe = redis.Redis.from_url(redis_server.url)
    try:
        wait_for(lambda: _healthy(port) or serve.poll() is not None, "serve to answer")
        assert serve.poll() is None, (tmp_path / "serve.err").read_text()[-2000:]
        paths = ["/blocks", "/blocks", f"/accountDeploys/{account(0)}", f"/accountDeploys/{account(1)}"]
        subs = subprocess.Popen([sys.executable, "-c", _STALLED, str(port), *paths], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE)  # fmt: skip
        assert subs.stdout is not None and subs.stdout.readline().strip() == b"ready"
        wait_for(lambda: probe.pubsub_numsub(topic_of("bench"))[0][1] >= 1, "serve subscribed in Redis")
        out = 1
        for i in range(300):  # ~3 s of batches, the subscribers killed halfway
            if i == 150:
                subs.kill()
            probe.publish(topic_of("bench"), _batch(out, 100))
            out += 100
            time.sleep(0.01)
        serve.send_signal(signal.SIGTERM)
        try:
            code = serve.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pytest.fail("bftscope serve did not exit within 10 s of SIGTERM")
        assert code in (0, -signal.SIGTERM)  # uvicorn re-raises the signal once shut down
        log = (tmp_path / "serve.err").read_text()
        assert "left behind" not in log
        # a subscriber that vanished while being sent to ends its stream quietly, not as the server's error
        assert "Exception in ASGI application" not in log
    finally:
        for proc in (subs, serve):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
        if subs is not None:
            for pipe in (subs.stdin, subs.stdout):
                if pipe is not None:
                    pipe.close()
        probe.close()
        err.close()


def _healthy(port: int) -> bool:
    with contextlib.suppress(httpx.HTTPError):
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
    return False
