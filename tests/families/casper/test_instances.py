"""Two API instances and one Redis (a real ``redis-server`` on a free port, started here): what instance A
ingests reaches WebSocket and SSE subscribers on instance B — each only its own channel's — and when Redis is
killed and restarted mid-stream both instances reconnect, A counts the batches it could not publish and B the
entities it never received, and what is published afterwards flows again."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from websockets.sync.client import ClientConnection, connect

from bftscope.config import Settings
from bftscope.families.casper.publish import topic_of
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
