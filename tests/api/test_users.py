"""The user bootstrap and user lifecycle: exactly one first admin under concurrency, never reopened,
optionally closed to anonymous callers, the last admin kept, and clean 409s for names taken concurrently."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from bftscope.api.app import create_app
from bftscope.config import Settings
from bftscope.store import DuckDBStore
from tests.api.conftest import make_user

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def _concurrent_posts(app: Any, bodies: list[dict[str, str]], headers: dict[str, str] | None = None) -> list[
        httpx.Response]:  # fmt: skip
    """Send every body at once; the sync route handlers run on the thread pool, so they truly overlap."""
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 5000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        return list(await asyncio.gather(*(c.post("/v1/users", json=b, headers=headers or {}) for b in bodies)))


async def test_concurrent_anonymous_bootstrap_makes_exactly_one_admin(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "d", rate_limit_enabled=False)
    store = DuckDBStore.open(settings.store_path, settings)
    try:
        app = create_app(settings, store=store)
        bodies = [{"username": f"user{i}", "email": f"user{i}@corp.io"} for i in range(20)]
        answers = await _concurrent_posts(app, bodies)
        created = [r for r in answers if r.status_code == 201]
        assert len(created) == 1, [(r.status_code, r.text) for r in answers]
        assert created[0].json()["isAdmin"] is True
        assert {r.status_code for r in answers if r.status_code != 201} == {401}
        assert store.query("SELECT count(*), count(*) FILTER (WHERE is_admin) FROM users") == [(1, 1)]
        app.state.ctx.jobs.wait()
    finally:
        store.close()


async def test_concurrent_creates_of_one_username_give_one_user_and_409s(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "d", rate_limit_enabled=False)
    store = DuckDBStore.open(settings.store_path, settings)
    try:
        app = create_app(settings, store=store)
        with TestClient(app) as client:
            admin = make_user(client, "alice")
        bodies = [{"username": "bob", "email": f"bob{i}@corp.io"} for i in range(12)]
        answers = await _concurrent_posts(app, bodies, admin["h"])
        assert sorted(r.status_code for r in answers) == [201] + [409] * 11, [r.text for r in answers]
        assert all(r.json()["code"] == "conflict" for r in answers if r.status_code == 409)
        assert store.query("SELECT count(*) FROM users WHERE username = 'bob'") == [(1,)]
    finally:
        store.close()


def test_bootstrap_never_reopens_after_every_user_is_deleted(client: TestClient) -> None:
    alice = make_user(client, "alice")
    bob = make_user(client, "bob", alice["token"])
    assert client.delete(f"/v1/users/{bob['id']}", headers=bob["h"]).status_code == 200
    # alice is the last admin: she cannot delete herself, so the store never becomes empty through the API …
    r = client.delete(f"/v1/users/{alice['id']}", headers=alice["h"])
    assert r.status_code == 409 and r.json()["code"] == "conflict" and "last admin" in r.json()["error"]
    # … and even an empty users table (e.g. emptied by hand) does not reopen the anonymous bootstrap
    store: DuckDBStore = client.app.state.ctx.store  # type: ignore[attr-defined]
    store.execute("DELETE FROM api_tokens")
    store.execute("DELETE FROM users")
    client.app.state.ctx.tokens.drop()  # type: ignore[attr-defined]
    r = client.post("/v1/users", json={"username": "mallory", "email": "mallory@corp.io"})
    assert r.status_code == 401 and r.json()["code"] == "unauthorized"


def test_an_admin_may_delete_another_admin_but_not_the_last(client: TestClient) -> None:
    alice = make_user(client, "alice")
    store: DuckDBStore = client.app.state.ctx.store  # type: ignore[attr-defined]
    bob = make_user(client, "bob", alice["token"])
    store.execute("UPDATE users SET is_admin = true WHERE id = ?", [bob["id"]])
    client.app.state.ctx.tokens.drop()  # type: ignore[attr-defined]
    assert client.delete(f"/v1/users/{alice['id']}", headers=bob["h"]).status_code == 200
    assert client.delete(f"/v1/users/{bob['id']}", headers=bob["h"]).status_code == 409
    assert store.query("SELECT username, is_admin FROM users") == [("bob", True)]


def test_anonymous_bootstrap_can_be_disabled(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "d", rate_limit_enabled=False, anonymous_bootstrap=False)
    with TestClient(create_app(settings)) as client:
        r = client.post("/v1/users", json={"username": "alice", "email": "alice@corp.io"})
        assert r.status_code == 401 and "bftscope users create" in r.json()["error"]
        store: DuckDBStore = client.app.state.ctx.store  # type: ignore[attr-defined]
        assert store.query("SELECT count(*) FROM users") == [(0,)]
