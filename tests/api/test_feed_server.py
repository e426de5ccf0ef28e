"""The feed through a real uvicorn server on 127.0.0.1 and a real websocket client: a refused handshake is an
HTTP refusal (nothing accepted), the token works as a header and as a ``bearer.`` subprotocol, and rows
published from another thread (as a follower writing from its own) arrive in order."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect
from websockets.typing import Subprotocol

from bftscope.api.app import create_app
from bftscope.config import Settings
from tests.api.test_networks import Followers, followers  # noqa: F401 — the fixture
from tests.live.fakes import vote


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server(tmp_path: Path, followers: Followers) -> Iterator[str]:  # noqa: F811
    port = _free_port()
    app = create_app(Settings(data_dir=tmp_path / "data", rate_limit_enabled=False))
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.02)
    yield f"127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(timeout=20)


def test_feed_over_a_real_server(server: str, followers: Followers) -> None:  # noqa: F811
    http = httpx.Client(base_url=f"http://{server}")
    admin: dict[str, Any] = http.post("/v1/users", json={"username": "root1", "email": "r@corp.io"}).json()
    h = {"Authorization": f"Bearer {admin['token']}"}
    nid = http.post("/v1/networks", json={"name": "n1", "endpoints": ["http://127.0.0.1:9"]}, headers=h).json()["id"]
    url = f"ws://{server}/v1/networks/{nid}/feed"

    for offered in (None, [Subprotocol("bftscope.feed"), Subprotocol("bearer.wrong")]):
        with pytest.raises(InvalidStatus) as refused:
            connect(url, subprotocols=offered).close()
        assert refused.value.response.status_code == 403

    browser = [Subprotocol("bftscope.feed"), Subprotocol(f"bearer.{admin['token']}")]
    with connect(url + "?kinds=vote_added", additional_headers=h) as a, connect(url, subprotocols=browser) as b:
        assert b.subprotocol == "bftscope.feed"
        f = followers.of("n1")
        for height in range(1, 6):  # from this thread, not the server's loop
            f.emit([vote(height), {"ts": 1, "kind": "step", "height": height}])
        got_a = [json.loads(a.recv(timeout=10)) for _ in range(5)]
        got_b = [json.loads(b.recv(timeout=10)) for _ in range(5)]
    assert [[r["height"] for r in batch] for batch in got_a] == [[h] for h in range(1, 6)]
    assert [[r["kind"] for r in batch] for batch in got_b] == [["vote_added", "step"]] * 5
    http.close()
