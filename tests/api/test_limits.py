"""Request bodies against the real app: nobody's body is read before their token is checked, and the size
limit is the one of the route that actually matched (``PUT /v1/projects/upload`` is a project update, not
an upload). Each request is driven straight through ASGI with a ``receive`` that counts what the app
pulled, so "not read" is measured, not inferred from the status."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from bftscope.api.app import create_app
from bftscope.config import Settings
from bftscope.store import DuckDBStore
from tests.api.conftest import make_user

pytestmark = pytest.mark.anyio

CHUNK = 64 * 1024
MiB = 1024 * 1024


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Api:
    """The app over a store with one admin, one project and one simulation."""

    def __init__(self, settings: Settings) -> None:
        self.store = DuckDBStore.open(settings.store_path, settings)
        self.app = create_app(settings, store=self.store)
        with TestClient(self.app) as client:
            self.user = make_user(client, "alice")
            uid = self.user["id"]
            self.project = client.post(f"/v1/users/{uid}/projects", json={"name": "p"}, headers=self.user["h"]).json()
            self.sim = client.post(f"/v1/users/{uid}/projects/{self.project['id']}/simulations", json={"name": "s"},
                                   headers=self.user["h"]).json()  # fmt: skip

    async def call(self, method: str, path: str, *, chunks: int, token: bool = False,
                   headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any], int]:  # fmt: skip
        """Send ``chunks`` × 64 KiB (chunked, no Content-Length unless given); returns (status, body, bytes
        the app pulled from ``receive``)."""
        sent = 0
        pulled = 0
        head = {"content-type": "application/json", **(headers or {})}
        if token:
            head["authorization"] = self.user["h"]["Authorization"]
        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
            "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
            "client": ("127.0.0.1", 1), "server": ("testserver", 80), "app": self.app,
            "headers": [(k.encode(), v.encode()) for k, v in head.items()],
        }  # fmt: skip
        messages: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            nonlocal sent, pulled
            if sent >= chunks:
                return {"type": "http.disconnect"}
            sent += 1
            body = b'{"name": "' + b"x" * (CHUNK - 10) if sent == 1 else b"x" * CHUNK
            pulled += len(body)
            return {"type": "http.request", "body": body, "more_body": sent < chunks}

        async def send(message: dict[str, Any]) -> None:
            messages.append(message)

        await self.app(scope, receive, send)
        status = next(m["status"] for m in messages if m["type"] == "http.response.start")
        body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
        return status, json.loads(body), pulled


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    settings = Settings(data_dir=tmp_path / "d", rate_limit_enabled=False, max_upload_request_bytes=100 * 1024)
    api = Api(settings)
    yield api
    api.app.state.ctx.jobs.wait()
    api.store.close()


@pytest.mark.parametrize(
    ("method", "path"),
    [("PUT", "/v1/projects/upload"), ("PUT", "/v1/simulations/upload"), ("PUT", "/v1/projects/{pid}"),
     ("POST", "/v1/users/{uid}/projects"), ("POST", "/v1/simulations/{sid}/upload")],
)  # fmt: skip
async def test_no_body_is_read_before_the_token_is_checked(api: Api, method: str, path: str) -> None:
    path = path.format(pid=api.project["id"], uid=api.user["id"], sid=api.sim["id"])
    status, body, pulled = await api.call(method, path, chunks=64)  # 4 MiB offered
    assert (status, body["code"]) == (401, "unauthorized")
    assert pulled == 0


async def test_anonymous_create_after_the_bootstrap_is_refused_unread(api: Api) -> None:
    status, body, pulled = await api.call("POST", "/v1/users", chunks=8)
    assert (status, body["code"], pulled) == (401, "unauthorized", 0)


@pytest.mark.parametrize("path", ["/v1/projects/upload", "/v1/simulations/upload", "/v1/projects/{pid}"])
async def test_non_upload_routes_keep_the_json_limit_even_when_named_upload(api: Api, path: str) -> None:
    path = path.format(pid=api.project["id"])
    status, body, pulled = await api.call("PUT", path, chunks=64, token=True)
    assert (status, body["code"]) == (413, "payload_too_large")
    assert pulled <= MiB + CHUNK  # stopped at the first chunk past 1 MiB


async def test_declared_length_over_the_limit_is_refused_before_reading(api: Api) -> None:
    big = {"content-length": str(2 * MiB)}
    status, body, pulled = await api.call("PUT", f"/v1/projects/{api.project['id']}", chunks=32, token=True,
                                          headers=big)  # fmt: skip
    assert (status, body["code"], pulled) == (413, "payload_too_large", 0)
    # an upload route is held to the upload request limit (100 KiB here) on its declared length too
    up = {"content-length": str(200 * 1024), "content-type": "multipart/form-data; boundary=b"}
    status, body, pulled = await api.call("POST", f"/v1/simulations/{api.sim['id']}/upload", chunks=4, token=True,
                                          headers=up)  # fmt: skip
    assert (status, body["code"], pulled) == (413, "payload_too_large", 0)
