"""API test fixtures: an app over a fresh store, users with tokens, and the real WAL testnet as archives."""

from __future__ import annotations

import io
import tarfile
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from bftscope.api.app import create_app
from bftscope.config import Settings
from bftscope.store import DuckDBStore


@pytest.fixture
def api_settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", rate_limit_enabled=False)


@pytest.fixture
def client(api_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(api_settings)) as c:
        yield c


def poll_json(client: TestClient, url: str, headers: dict[str, str], done: Any, deadline_s: float = 60) -> Any:
    """GET ``url`` until ``done(body)`` holds (a live network's status catching up); fails after ``deadline_s``."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        body = client.get(url, headers=headers).json()
        if done(body):
            return body
        time.sleep(0.05)
    raise AssertionError(f"not reached in {deadline_s} s: {body}")


def make_user(client: TestClient, name: str, admin_token: str | None = None) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {admin_token}"} if admin_token else {}
    r = client.post("/v1/users", json={"username": name, "email": f"{name}@corp.io"}, headers=headers)
    assert r.status_code == 201, r.text
    user: dict[str, Any] = r.json()
    user["h"] = {"Authorization": f"Bearer {user['token']}"}
    return user


def tar_gz(folder: Path, arcname: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as t:
        t.add(folder, arcname=arcname)
    return buf.getvalue()


def zip_of(folder: Path, arcname: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for f in sorted(folder.rglob("*")):
            if f.is_file():
                z.write(f, f"{arcname}/{f.relative_to(folder)}")
    return buf.getvalue()


def wait_processed(client: TestClient, sim_id: str, headers: dict[str, str], timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sim: dict[str, Any] = client.get(f"/v1/simulations/{sim_id}", headers=headers).json()
        if sim["processingStatus"] in ("completed", "failed"):
            return sim
        time.sleep(0.2)
    raise AssertionError(f"simulation {sim_id} still processing after {timeout} s")


@pytest.fixture
def store_of(client: TestClient) -> DuckDBStore:
    store: DuckDBStore = client.app.state.ctx.store  # type: ignore[attr-defined]
    return store
