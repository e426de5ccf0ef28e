"""A real ``bftscope serve`` on 127.0.0.1, killed with SIGKILL in the middle of an upload and restarted:
nothing of the cut request is kept or ingested. On the same server: ``/process`` while an upload is still
streaming gets a 409, and a client that disconnects mid-body is a logged line and a 499, not a 5xx."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import require_data

BOUNDARY = "crashTestBoundary42"


def multipart(parts: list[tuple[str, bytes]]) -> bytes:
    out = b""
    for name, data in parts:
        out += (f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="logfiles"; filename="{name}"\r\n'
                "Content-Type: application/octet-stream\r\n\r\n").encode() + data + b"\r\n"  # fmt: skip
    return out + f"--{BOUNDARY}--\r\n".encode()


def half_way_into_the_wal(body: bytes, parts: list[tuple[str, bytes]]) -> int:
    return body.index(b'filename="wal"') + len(parts[1][1]) // 2


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Server:
    """``bftscope serve`` as a child process over one data folder; its stderr goes to a file."""

    def __init__(self, data_dir: Path, log: Path) -> None:
        self.data_dir, self.log = data_dir, log
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0

    def start(self) -> None:
        self.port = free_port()
        env = {**os.environ, "BFTSCOPE_DATA_DIR": str(self.data_dir), "BFTSCOPE_RATE_LIMIT_ENABLED": "false",
               "BFTSCOPE_INGEST_WORKERS": "1"}  # fmt: skip
        code = "import sys; from bftscope.cli import app; sys.exit(app())"
        with self.log.open("ab") as err:
            self.proc = subprocess.Popen([sys.executable, "-c", code, "serve", "--host", "127.0.0.1", "--port",
                                          str(self.port)], env=env, stdout=subprocess.DEVNULL, stderr=err)  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        raise AssertionError("bftscope serve did not answer /healthz")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()  # SIGKILL: no shutdown code runs
            self.proc.wait(30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    srv = Server(tmp_path / "data", tmp_path / "serve.log")
    try:
        yield srv
    finally:
        srv.kill()


def start_upload(srv: Server, sid: str, token: str, body: bytes, cut: int) -> socket.socket:
    """Send the headers and ``body[:cut]`` of an upload; the caller sends the rest, closes, or kills the server."""
    head = (f"POST /v1/simulations/{sid}/upload HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n").encode()  # fmt: skip
    sock = socket.create_connection(("127.0.0.1", srv.port), timeout=60)
    sock.sendall(head + body[:cut])
    return sock


def wait_for(predicate: Any, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def files_of(srv: Server, sid: str) -> list[str]:
    folder = srv.data_dir / "uploads" / sid / "files"
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def wait_processed(c: httpx.Client, sid: str) -> dict[str, Any]:
    sim: dict[str, Any] = {}

    def done() -> bool:
        nonlocal sim
        sim = c.get(f"/v1/simulations/{sid}").json()
        return sim["processingStatus"] in ("completed", "failed")

    wait_for(done, f"simulation {sid} to be processed", timeout=180)
    return sim


def test_kill_9_mid_upload_keeps_nothing_and_process_excludes_a_streaming_upload(server: Server) -> None:
    testnet = require_data("cometbft/tendermint-v0.34-4node-wal")
    node0 = [("tendermint.log", (testnet / "node0" / "tendermint.log").read_bytes()),
             ("wal", (testnet / "node0" / "data" / "cs.wal" / "wal").read_bytes())]  # fmt: skip
    node1 = [("tendermint.log", (testnet / "node1" / "tendermint.log").read_bytes()),
             ("wal", (testnet / "node1" / "data" / "cs.wal" / "wal").read_bytes())]  # fmt: skip
    server.start()
    with httpx.Client(base_url=server.url, timeout=60) as c:
        user = c.post("/v1/users", json={"username": "alice", "email": "alice@corp.io"}).json()
        token, uid = user["token"], user["id"]
        c.headers["Authorization"] = f"Bearer {token}"
        pid = c.post(f"/v1/users/{uid}/projects", json={"name": "p"}).json()["id"]
        crashed, clean = (c.post(f"/v1/users/{uid}/projects/{pid}/simulations", json={"name": n}).json()["id"]
                          for n in ("crashed", "clean"))  # fmt: skip

    # The first file complete, the second cut half-way: then SIGKILL.
    body = multipart(node0)
    sock = start_upload(server, crashed, token, body, half_way_into_the_wal(body, node0))
    wait_for(lambda: "tendermint.log" in files_of(server, crashed), "the first file on disk")
    server.kill()
    sock.close()

    server.start()
    assert files_of(server, crashed) == []  # neither the finished first part nor the cut one survived
    with httpx.Client(base_url=server.url, timeout=60, headers={"Authorization": f"Bearer {token}"}) as c:
        assert c.get(f"/v1/simulations/{crashed}").json()["logFiles"] == []
        for sid in (crashed, clean):
            r = c.post(f"/v1/simulations/{sid}/upload", files=[("logfiles", (n, d)) for n, d in node0])
            assert r.status_code == 200, r.text
            assert wait_processed(c, sid)["status"] == "processed"
        events = c.get(f"/v1/simulations/{clean}/summary").json()["events"]
        assert c.get(f"/v1/simulations/{crashed}/summary").json()["events"] == events > 0

        # /process (and delete) while an upload to the same simulation still streams: 409
        body = multipart(node1)
        sock = start_upload(server, crashed, token, body, half_way_into_the_wal(body, node1))
        wait_for(lambda: len(files_of(server, crashed)) == 3, "node1's log on disk")
        r = c.post(f"/v1/simulations/{crashed}/process")
        assert r.status_code == 409 and "being uploaded" in r.json()["error"], r.text
        assert c.delete(f"/v1/simulations/{crashed}").status_code == 409
        sock.sendall(body[half_way_into_the_wal(body, node1) :])
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
        sock.close()
        assert answer.startswith(b"HTTP/1.1 200"), answer[:300]
        assert wait_processed(c, crashed)["status"] == "processed"
        assert c.get(f"/v1/simulations/{crashed}/summary").json()["events"] > events

        # a client that goes away mid-body: one line, a 499, nothing kept
        sock = start_upload(server, clean, token, body, len(body) // 2)
        sock.close()
        wait_for(lambda: 'status="499"' in c.get("/metrics").text, "the disconnect to be counted")
        assert 'status="500"' not in c.get("/metrics").text
        assert files_of(server, clean) == ["tendermint.log", "wal"]
    server.stop()
    log = server.log.read_text()
    assert "Traceback" not in log
    assert log.count("the client disconnected") == 1


def test_a_stale_run_that_cannot_be_rebuilt_does_not_keep_the_server_down(
    wal_testnet: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Start-up rebuilds runs a killed ingest left stale; one that fails to rebuild (a full disk, a
    query past its time limit) stays stale and is named in the log — the server still starts."""
    from starlette.testclient import TestClient

    from bftscope.api.app import create_app
    from bftscope.config import Settings
    from bftscope.errors import StoreError
    from bftscope.families.cometbft.analytics import derive
    from bftscope.ingest import derived
    from bftscope.ingest.pipeline import ingest
    from bftscope.store import DuckDBStore

    settings = Settings(data_dir=tmp_path / "data")
    store = DuckDBStore.open(settings.store_path, settings)
    ingest(store, "v034", [wal_testnet / "node0"], settings)
    store.set_derived_version(store.get_run("v034").id, None)
    store.close()

    def broken(*args: object, **kwargs: object) -> None:
        raise StoreError("disk full")

    monkeypatch.setattr(derive, "rebuild", broken)
    with caplog.at_level("WARNING", logger="bftscope.api"), TestClient(create_app(settings)) as client:
        assert client.get("/healthz").status_code == 200
        store = client.app.state.ctx.store  # type: ignore[attr-defined]
        assert not derived.is_current(store, store.get_run("v034").id)
    assert any("v034" in r.getMessage() and "disk full" in r.getMessage() for r in caplog.records)
