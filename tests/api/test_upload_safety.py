"""Uploads and processing jobs under abuse, in process: the same bytes twice, skipped archive members, a
sparse-tar bomb, a job cut off by a stop, a client that goes away mid-body, and processing against an
upload in both orders. The crash (kill -9) cases against a real server are in ``test_serve_crash.py``."""

from __future__ import annotations

import asyncio
import io
import logging
import shutil
import subprocess
import tarfile
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from bftscope.api.app import create_app
from bftscope.config import Settings
from bftscope.control import jobs
from bftscope.control import simulations as sims
from bftscope.control.uploads import SavedFile
from bftscope.store import DuckDBStore
from tests.api.conftest import make_user, wait_processed
from tests.conftest import require_data


def new_simulation(client: TestClient, user: dict[str, Any] | None = None) -> tuple[dict[str, str], str]:
    """A new simulation of ``user`` (default: a new first user, the admin); its auth headers and id."""
    user = user or make_user(client, "alice")
    h, uid = user["h"], user["id"]
    pid = client.post(f"/v1/users/{uid}/projects", json={"name": "p"}, headers=h).json()["id"]
    sid = client.post(f"/v1/users/{uid}/projects/{pid}/simulations", json={"name": "s"}, headers=h).json()["id"]
    return h, sid


def node0_files() -> tuple[bytes, bytes]:
    node0 = require_data("cometbft/tendermint-v0.34-4node-wal/node0")
    return (node0 / "tendermint.log").read_bytes(), (node0 / "data" / "cs.wal" / "wal").read_bytes()


def events_of(client: TestClient, sid: str, h: dict[str, str]) -> int:
    n: int = client.get(f"/v1/simulations/{sid}/summary", headers=h).json()["events"]
    return n


def test_the_same_bytes_twice_in_one_request_are_ingested_once(client: TestClient) -> None:
    log, wal = node0_files()
    alice = make_user(client, "alice")
    h, clean = new_simulation(client, alice)
    r = client.post(f"/v1/simulations/{clean}/upload", headers=h,
                    files=[("logfiles", ("tendermint.log", log)), ("logfiles", ("wal", wal))])  # fmt: skip
    assert r.status_code == 200 and r.json()["duplicates"] == []
    h2, sid = new_simulation(client, alice)
    files = [("logfiles", ("node0.log", log)), ("logfiles", ("wal", wal)), ("logfiles", ("copy/node0.log", log)),
             ("logfiles", ("third.log", log))]  # fmt: skip
    r = client.post(f"/v1/simulations/{sid}/upload", headers=h2, files=files)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["uploadedFiles"] == 2 and body["uploadedFileNames"] == ["node0.log", "wal"]
    assert body["duplicates"] == [{"originalFilename": "node0.log", "sameAs": "node0.log"},
                                  {"originalFilename": "third.log", "sameAs": "node0.log"}]  # fmt: skip
    assert wait_processed(client, clean, h)["status"] == "processed"
    assert wait_processed(client, sid, h2)["status"] == "processed"
    assert events_of(client, sid, h2) == events_of(client, clean, h) > 0
    # the same file again in a later request is a duplicate too, and starts no processing
    r = client.post(f"/v1/simulations/{sid}/upload", headers=h2, files=[("logfiles", ("again.log", log))])
    assert r.status_code == 200 and r.json()["uploadedFiles"] == 0 and r.json()["totalFiles"] == 2
    assert r.json()["duplicates"] == [{"originalFilename": "again.log", "sameAs": "node0.log"}]
    assert client.get(f"/v1/simulations/{sid}", headers=h2).json()["processingStatus"] == "completed"


def test_skipped_archive_members_are_listed_in_the_upload_answer(client: TestClient) -> None:
    log, _ = node0_files()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, kind in [("node0/tendermint.log", tarfile.REGTYPE), ("../escape.log", tarfile.REGTYPE),
                           ("node0/link", tarfile.SYMTYPE), ("node0/tty", tarfile.CHRTYPE)]:  # fmt: skip
            info = tarfile.TarInfo(name)
            info.type, info.size = kind, len(log) if kind == tarfile.REGTYPE else 0
            info.linkname = "/etc/passwd" if kind == tarfile.SYMTYPE else ""
            tf.addfile(info, io.BytesIO(log) if kind == tarfile.REGTYPE else None)
    h, sid = new_simulation(client)
    r = client.post(f"/v1/simulations/{sid}/upload", headers=h, files=[("logfiles", ("home.tar.gz", buf.getvalue()))])
    assert r.status_code == 200, r.text
    assert r.json()["skippedMembers"] == [
        {"filePath": "home.tar.gz", "member": "../escape.log", "reason": "path climbs out with '..'"},
        {"filePath": "home.tar.gz", "member": "node0/link", "reason": "symbolic link: not extracted"},
        {"filePath": "home.tar.gz", "member": "node0/tty", "reason": "device: not extracted"},
    ]
    assert wait_processed(client, sid, h)["status"] == "processed"


@pytest.mark.skipif(shutil.which("tar") is None, reason="needs GNU tar for --sparse")
def test_sparse_tar_over_the_settings_limit_fails_and_leaves_no_expanded_copy(tmp_path: Path) -> None:
    limit = 4 * 1024 * 1024
    # the ratio limit out of reach: the total alone must stop it
    settings = Settings(data_dir=tmp_path / "d", rate_limit_enabled=False, max_archive_bytes=limit,
                        max_archive_ratio=1e12)  # fmt: skip
    src = tmp_path / "src"
    src.mkdir()
    with (src / "big.log").open("wb") as fh:
        fh.truncate(limit + 1)  # a hole: takes no disk space here, and ~100 bytes in the archive
    archive = tmp_path / "s.tar.gz"
    subprocess.run(["tar", "--sparse", "-czf", str(archive), "-C", str(src), "big.log"], check=True)
    log, _ = node0_files()
    with TestClient(create_app(settings)) as client:
        h, sid = new_simulation(client)
        files = [("logfiles", ("s.tar.gz", archive.read_bytes())), ("logfiles", ("node0.log", log))]
        r = client.post(f"/v1/simulations/{sid}/upload", headers=h, files=files)
        assert r.status_code == 200, r.text
        [entry] = r.json()["skippedMembers"]
        assert entry["member"] == "s.tar.gz" and f"expands to over {limit} bytes" in entry["reason"]
        sim = wait_processed(client, sid, h)
        assert sim["status"] == "failed" and f"expands to over {limit} bytes" in sim["processingResult"]["errorMessage"]
        folder = sims.simulation_dir(settings.data_dir, sid)
        assert sorted(p.name for p in (folder / "files").iterdir()) == ["node0.log", "s.tar.gz"]
        assert not (folder / "expanded").exists()  # neither the cut-off copy nor the others' copies
        assert events_of(client, sid, h) > 0  # what the good file gave is kept


def test_a_job_cut_off_by_a_stop_says_it_was_interrupted_after_restart(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "d", rate_limit_enabled=False)
    with TestClient(create_app(settings)) as client:
        h, sid = new_simulation(client)
        store: DuckDBStore = client.app.state.ctx.store  # type: ignore[attr-defined]
        sims.add_files(store, sid, [SavedFile("node0.log", "node0.log", 1, "0" * 64)])
        # what a kill -9 mid-job leaves: the row says processing, an expanded copy is on disk
        sims.set_state(store, sid, status="processing", processing_status="processing", progress=0.4)
        (sims.simulation_dir(settings.data_dir, sid) / "expanded" / "x").mkdir(parents=True)
    with TestClient(create_app(settings)) as client:
        sim: dict[str, Any] = client.get(f"/v1/simulations/{sid}", headers=h).json()
    assert sim["status"] == "failed" and sim["processingStatus"] == "failed" and sim["progress"] is None
    result = sim["processingResult"]
    assert result is not None and result["processedFiles"] == 0 and result["totalFiles"] == 1
    assert result["errorMessage"].startswith("interrupted: the server stopped")
    assert f"POST /v1/simulations/{sid}/process" in result["errorMessage"]
    assert not (sims.simulation_dir(settings.data_dir, sid) / "expanded").exists()


def test_a_client_disconnect_mid_upload_is_one_line_and_a_499(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    h, sid = new_simulation(client)
    log, _ = node0_files()
    boundary = "b0undary"
    head = (f'--{boundary}\r\nContent-Disposition: form-data; name="logfiles"; filename="node0.log"\r\n\r\n').encode()
    messages: list[dict[str, Any]] = [{"type": "http.request", "body": head + log[:4000], "more_body": True},
                                      {"type": "http.disconnect"}]  # fmt: skip
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": f"/v1/simulations/{sid}/upload", "raw_path": f"/v1/simulations/{sid}/upload".encode(),
             "query_string": b"", "root_path": "", "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 80),
             "headers": [(b"host", b"127.0.0.1"), (b"authorization", h["Authorization"].encode()),
                         (b"content-type", f"multipart/form-data; boundary={boundary}".encode()),
                         (b"content-length", b"999999")]}  # fmt: skip
    caplog.set_level(logging.INFO)
    asyncio.run(client.app(scope, receive, send))  # type: ignore[arg-type]
    assert sent[0]["status"] == 499
    upload_lines = [r for r in caplog.records if r.name != "bftscope.access" and "disconnected" in r.getMessage()]
    assert len(upload_lines) == 1 and upload_lines[0].exc_info is None
    assert not any(r.exc_info for r in caplog.records)
    assert '"status":499' in next(r.getMessage() for r in caplog.records if r.name == "bftscope.access")
    metrics = client.get("/metrics").text
    assert 'route="/v1/simulations/{id}/upload",status="499"' in metrics
    assert 'status="500"' not in metrics
    files = sims.simulation_dir(client.app.state.ctx.settings.data_dir, sid) / "files"  # type: ignore[attr-defined]
    assert list(files.iterdir()) == []
    assert client.get(f"/v1/simulations/{sid}", headers=h).json()["logFiles"] == []
    # the simulation is free again: an upload after the disconnect is taken
    r = client.post(f"/v1/simulations/{sid}/upload", headers=h, files=[("logfiles", ("node0.log", log))])
    assert r.status_code == 200


def test_an_upload_while_processing_gets_409(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    log, wal = node0_files()
    h, sid = new_simulation(client)
    r = client.post(f"/v1/simulations/{sid}/upload", headers=h, files=[("logfiles", ("node0.log", log))])
    assert r.status_code == 200
    wait_processed(client, sid, h)
    release, started = threading.Event(), threading.Event()
    real = jobs.process_simulation

    def held(*args: Any) -> None:  # the job is "running" until the test lets it go
        started.set()
        release.wait(30)
        real(*args)

    monkeypatch.setattr(jobs, "process_simulation", held)
    try:
        assert client.post(f"/v1/simulations/{sid}/process", headers=h).status_code == 202
        assert started.wait(30)
        r = client.post(f"/v1/simulations/{sid}/upload", headers=h, files=[("logfiles", ("wal", wal))])
        assert r.status_code == 409 and "being processed" in r.json()["error"]
        assert client.delete(f"/v1/simulations/{sid}", headers=h).status_code == 409
    finally:
        release.set()
    assert wait_processed(client, sid, h)["status"] == "processed"
    files = sims.simulation_dir(client.app.state.ctx.settings.data_dir, sid) / "files"  # type: ignore[attr-defined]
    assert [p.name for p in files.iterdir()] == ["node0.log"]


def test_start_up_removes_upload_debris_and_keeps_recorded_files(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "d", rate_limit_enabled=False)
    log, _ = node0_files()
    with TestClient(create_app(settings)) as client:
        h, sid = new_simulation(client)
        assert client.post(f"/v1/simulations/{sid}/upload", headers=h,
                           files=[("logfiles", ("node0.log", log))]).status_code == 200  # fmt: skip
        client.app.state.ctx.jobs.wait()  # type: ignore[attr-defined]
    files = sims.simulation_dir(settings.data_dir, sid) / "files"
    (files / ".incoming-0123456789abcdef").write_bytes(log[:100])  # a part cut off by kill -9
    (files / "wal").write_bytes(b"finished, but its request never completed")
    orphan = sims.simulation_dir(settings.data_dir, "ab" * 12)  # a multipart create cut off before its row
    (orphan / "files").mkdir(parents=True)
    (orphan / "files" / "node.log").write_bytes(b"x")
    with TestClient(create_app(settings)) as client:
        assert [f["filePath"] for f in client.get(f"/v1/simulations/{sid}", headers=h).json()["logFiles"]] == [
            "node0.log"]  # fmt: skip
    assert sorted(p.name for p in files.iterdir()) == ["node0.log"] and (files / "node0.log").read_bytes() == log
    assert not orphan.exists()


def test_process_while_the_first_upload_streams_is_409_not_400(client: TestClient) -> None:
    """Found end to end: ``/process`` on a simulation whose first upload was still streaming answered
    400 "No log files available" (the files were not recorded yet) instead of the documented 409."""
    h, sid = new_simulation(client)
    ctx = client.app.state.ctx  # type: ignore[attr-defined]
    with ctx.jobs.uploading(sid):  # what a streaming upload holds until its files are recorded
        r = client.post(f"/v1/simulations/{sid}/process", headers=h)
        assert r.status_code == 409 and "being uploaded" in r.json()["error"], r.text
    r = client.post(f"/v1/simulations/{sid}/process", headers=h)
    assert r.status_code == 400 and r.json()["error"] == "No log files available for processing"


def test_a_simulation_shown_processed_can_be_deleted_at_once(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A job records the simulation's final state a moment before the runner stops counting it as active; a
    client that deletes (or reprocesses) as soon as it reads ``processed`` must not get 409 'being processed'."""
    log, _ = node0_files()
    h, sid = new_simulation(client)
    real = jobs.process_simulation

    def slow_to_finish(*args: Any) -> None:  # the final state is written, the job's bookkeeping lags
        real(*args)
        time.sleep(1.0)

    monkeypatch.setattr(jobs, "process_simulation", slow_to_finish)
    r = client.post(f"/v1/simulations/{sid}/upload", headers=h, files=[("logfiles", ("node0.log", log))])
    assert r.status_code == 200
    assert wait_processed(client, sid, h)["status"] == "processed"
    assert client.post(f"/v1/simulations/{sid}/process", headers=h).status_code == 202
    assert wait_processed(client, sid, h)["status"] == "processed"
    r = client.delete(f"/v1/simulations/{sid}", headers=h)
    assert r.status_code == 200, r.text
