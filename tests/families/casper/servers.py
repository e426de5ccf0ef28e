"""Real API instances for the subscription tests: ``bftscope``'s app under uvicorn on a free 127.0.0.1 port, in
a thread of this process (so a test can write through the instance's own store and read its hubs' counters),
with one admin and Casper networks created through the API."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import uvicorn

from bftscope.api.app import create_app
from bftscope.api.context import ApiContext
from bftscope.config import Settings
from bftscope.control.networks import create_network
from bftscope.families.casper.hub import Hub
from bftscope.families.casper.publish import attach_publisher
from bftscope.families.casper.serving import hubs_of
from bftscope.families.casper.sink import CasperSink

__all__ = ["Instance", "free_port", "serve", "wait_for"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(check: Callable[[], Any], what: str, timeout_s: float = 30.0) -> Any:
    """Poll ``check`` until it returns something truthy (a condition, never a measured time)."""
    deadline = time.monotonic() + timeout_s
    while True:
        got = check()
        if got:
            return got
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.02)


@dataclass
class Instance:
    app: Any
    host: str
    token: str = ""
    user_id: str = ""
    sinks: list[CasperSink] = field(default_factory=list)

    @property
    def ctx(self) -> ApiContext:
        ctx: ApiContext = self.app.state.ctx
        return ctx

    @property
    def http(self) -> str:
        return f"http://{self.host}"

    @property
    def ws(self) -> str:
        return f"ws://{self.host}"

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def hub(self, network: str) -> Hub:
        return hubs_of(self.ctx).get(network)

    def sink(self, network: str, **kw: Any) -> CasperSink:
        """A CasperSink on the network's run, publishing through this instance's broadcaster."""
        sink = CasperSink(self.ctx.store, f"net:{network}", **kw)
        attach_publisher(sink, self.ctx.broadcaster, network)
        self.sinks.append(sink)
        return sink

    def add_network(self, name: str, user: str = "root1") -> None:
        """Create the admin ``user`` (first call) and a Casper network ``name`` it owns."""
        with httpx.Client(base_url=self.http) as c:
            if not self.token:
                r = c.post("/v1/users", json={"username": user, "email": f"{user}@corp.io"})
                assert r.status_code == 201, r.text
                self.token, self.user_id = r.json()["token"], r.json()["id"]
        # in the store, not through POST /v1/networks: that refuses a family that cannot follow yet (the Casper
        # follower is another branch's), and these tests write through their own sink
        create_network(self.ctx.store, self.user_id, name, "casper", ["http://127.0.0.1:9"], {},
                       max_endpoints=8, max_per_user=20)  # fmt: skip


@contextlib.contextmanager
def serve(settings: Settings) -> Iterator[Instance]:
    port = free_port()
    app = create_app(settings)
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on",
                                        ws_ping_interval=None))  # fmt: skip
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    wait_for(lambda: srv.started or not thread.is_alive(), "the server to start")
    assert thread.is_alive(), "the server did not start"
    inst = Instance(app, f"127.0.0.1:{port}")
    try:
        yield inst
    finally:
        for sink in inst.sinks:
            sink.close()
        srv.should_exit = True
        thread.join(timeout=30)
