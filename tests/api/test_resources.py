"""Users, projects and simulations over HTTP: shapes, codes, error envelope, tokens and ownership."""

from __future__ import annotations

from pathlib import Path

from starlette.testclient import TestClient

from bftscope.api.app import check_bind, create_app
from bftscope.config import Settings
from bftscope.errors import InputError
from tests.api.conftest import make_user

NOBODY = "0123456789abcdef01234567"


def test_first_user_is_admin_and_later_users_need_an_admin(client: TestClient) -> None:
    alice = make_user(client, "alice")
    assert alice["isAdmin"] is True and alice["token"].startswith("bfts_")
    assert set(alice) >= {"id", "username", "email", "createdAt", "updatedAt"}
    r = client.post("/v1/users", json={"username": "bob", "email": "bob@corp.io"})
    assert r.status_code == 401 and r.json()["code"] == "unauthorized"
    bob = make_user(client, "bob", alice["token"])
    assert bob["isAdmin"] is False
    r = client.post("/v1/users", json={"username": "carol", "email": "carol@corp.io"}, headers=bob["h"])
    assert r.status_code == 403 and r.json() == {"error": "only an admin may create users", "code": "forbidden"}


def test_user_validation_and_conflicts(client: TestClient) -> None:
    alice = make_user(client, "alice")
    h = alice["h"]
    r = client.post("/v1/users", json={"username": "x", "email": "nope"}, headers=h)
    assert r.status_code == 400
    assert r.json()["details"] == ["Username must be at least 3 characters", "Invalid email format"]
    r = client.post("/v1/users", json={"email": "a@corp.io"}, headers=h)
    assert r.status_code == 400 and r.json()["details"] == ["Username is required"]
    assert client.post("/v1/users", json={"username": "root", "email": "r@corp.io"}, headers=h).json()["error"] == \
        "username is reserved"  # fmt: skip
    assert client.post("/v1/users", json={"username": "dan", "email": "d@example.com"}, headers=h).status_code == 400
    r = client.post("/v1/users", json={"username": "ALICE", "email": "other@corp.io"}, headers=h)
    assert r.status_code == 409 and r.json()["error"] == "User with this username or email already exists"
    r = client.post("/v1/users", content=b"{not json", headers={**h, "Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["details"] == ["Invalid JSON format"]


def test_tokens_are_required_and_stored_hashed(client: TestClient, store_of: object) -> None:
    alice = make_user(client, "alice")
    assert client.get("/v1/users").status_code == 401
    assert client.get("/v1/users", headers={"Authorization": "Bearer bfts_wrong"}).status_code == 401
    assert client.get("/v1/users", headers={"Authorization": "Basic abc"}).status_code == 401
    stored = store_of.query("SELECT token_hash, prefix FROM api_tokens")  # type: ignore[attr-defined]
    assert len(stored) == 1 and alice["token"] not in str(stored) and len(stored[0][0]) == 64


def test_ids_are_checked(client: TestClient) -> None:
    h = make_user(client, "alice")["h"]
    assert client.get("/v1/users/xyz", headers=h).json() == {"error": "Invalid user ID", "code": "invalid_input"}
    assert client.get("/v1/projects/xyz", headers=h).json()["error"] == "Invalid project ID"
    assert client.get("/v1/simulations/xyz", headers=h).json()["error"] == "Invalid simulation ID"
    assert client.get(f"/v1/simulations/{NOBODY}", headers=h).status_code == 404
    assert client.get(f"/v1/projects/{NOBODY}", headers=h).json()["error"] == "Project not found"


def test_projects_crud_and_cascade(client: TestClient, api_settings: Settings) -> None:
    alice = make_user(client, "alice")
    h, uid = alice["h"], alice["id"]
    r = client.post(f"/v1/users/{uid}/projects", json={"name": "net", "description": "d"}, headers=h)
    assert r.status_code == 201
    p = r.json()
    assert set(p) == {"id", "name", "description", "userId", "createdAt", "updatedAt"} and p["userId"] == uid
    assert client.post(f"/v1/users/{uid}/projects", json={"description": "no name"}, headers=h).status_code == 400
    r = client.put(f"/v1/projects/{p['id']}", json={"description": "new"}, headers=h)
    assert r.json()["name"] == "net" and r.json()["description"] == "new" and r.json()["updatedAt"] > p["updatedAt"]
    assert [x["id"] for x in client.get(f"/v1/users/{uid}/projects", headers=h).json()] == [p["id"]]
    r = client.post(f"/v1/users/{uid}/projects/{p['id']}/simulations", headers=h,
                    files=[("logfiles", ("a.log", b"not a log\n", "text/plain"))], data={"name": "s"})  # fmt: skip
    assert r.status_code == 201
    sim = r.json()
    folder = api_settings.data_dir / "uploads" / sim["id"]
    client.app.state.ctx.jobs.wait()  # type: ignore[attr-defined]
    assert folder.is_dir()
    r = client.delete(f"/v1/projects/{p['id']}", headers=h)
    assert r.json() == {"message": "Project deleted successfully"}
    assert client.get(f"/v1/simulations/{sim['id']}", headers=h).status_code == 404
    assert not folder.exists()


def test_json_simulation_creation_works_with_plain_content_type(client: TestClient) -> None:
    alice = make_user(client, "alice")
    h, uid = alice["h"], alice["id"]
    pid = client.post(f"/v1/users/{uid}/projects", json={"name": "net"}, headers=h).json()["id"]
    r = client.post(f"/v1/users/{uid}/projects/{pid}/simulations", json={"name": "empty"},
                    headers={**h, "Content-Type": "application/json"})  # fmt: skip
    assert r.status_code == 201, r.text  # the original panicked on exactly this Content-Type
    sim = r.json()
    assert sim["status"] == "logfile_required" and sim["logFiles"] == [] and sim["processingStatus"] is None
    assert client.post(f"/v1/users/{uid}/projects/{pid}/simulations", json={"description": "x"},
                       headers=h).json()["error"] == "name is required"  # fmt: skip
    r = client.post(f"/v1/users/{uid}/projects/{pid}/simulations", content=b"name=x",
                    headers={**h, "Content-Type": "text/plain"})  # fmt: skip
    assert r.status_code == 415
    r = client.post(f"/v1/simulations/{sim['id']}/process", headers=h)
    assert r.status_code == 400 and r.json()["error"] == "No log files available for processing"
    r = client.put(f"/v1/simulations/{sim['id']}", json={"name": "renamed"}, headers=h)
    assert r.json()["name"] == "renamed"
    assert [s["id"] for s in client.get(f"/v1/projects/{pid}/simulations", headers=h).json()] == [sim["id"]]
    assert [s["id"] for s in client.get(f"/v1/users/{uid}/simulations", headers=h).json()] == [sim["id"]]


def test_uploads_are_safe_and_bounded(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "d", rate_limit_enabled=False, max_upload_file_bytes=4096,
                        max_upload_request_bytes=10_000)  # fmt: skip
    with TestClient(create_app(settings)) as client:
        alice = make_user(client, "alice")
        h, uid = alice["h"], alice["id"]
        pid = client.post(f"/v1/users/{uid}/projects", json={"name": "net"}, headers=h).json()["id"]
        sid = client.post(f"/v1/users/{uid}/projects/{pid}/simulations", json={"name": "s"}, headers=h).json()["id"]
        r = client.post(f"/v1/simulations/{sid}/upload", headers=h, files=[
            ("logfiles", ("../../../etc/passwd", b"x\n", "text/plain")),
            ("logfiles", ("node.log", b"y\n", "text/plain")),
            ("logfiles", ("node.log", b"z\n", "text/plain"))])  # fmt: skip
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["uploadedFiles"] == 3 and body["uploadedFileNames"] == ["passwd", "node.log", "node-1.log"]
        client.app.state.ctx.jobs.wait()  # type: ignore[attr-defined]
        sim = client.get(f"/v1/simulations/{sid}", headers=h).json()
        assert all("/" not in f["filePath"] and str(tmp_path) not in f["filePath"] for f in sim["logFiles"])
        assert (settings.data_dir / "uploads" / sid / "files" / "passwd").read_bytes() == b"x\n"
        assert sim["status"] == "failed" and "passwd" in sim["processingResult"]["errorMessage"]
        r = client.post(f"/v1/simulations/{sid}/upload", headers=h,
                        files=[("logfiles", ("big.log", b"x" * 5000, "text/plain"))])  # fmt: skip
        assert r.status_code == 413 and r.json()["code"] == "payload_too_large"
        assert not (settings.data_dir / "uploads" / sid / "files" / "big.log").exists()
        r = client.post(f"/v1/simulations/{sid}/upload", headers=h, files=[
            ("logfiles", (f"f{i}.log", b"x" * 3000, "text/plain")) for i in range(4)])  # fmt: skip
        assert r.status_code == 413
        assert client.post(f"/v1/simulations/{sid}/upload", headers=h, data={"a": "b"},
                           files=[("other", ("x", b"x", "text/plain"))]).status_code == 400  # fmt: skip


def test_one_user_cannot_touch_anothers_data(client: TestClient) -> None:
    alice = make_user(client, "alice")
    bob = make_user(client, "bob", alice["token"])
    carol = make_user(client, "carol", alice["token"])
    h = bob["h"]
    pid = client.post(f"/v1/users/{bob['id']}/projects", json={"name": "bob's"}, headers=h).json()["id"]
    sid = client.post(f"/v1/users/{bob['id']}/projects/{pid}/simulations", json={"name": "s"}, headers=h).json()["id"]
    ch = carol["h"]
    assert client.get(f"/v1/users/{bob['id']}", headers=ch).status_code == 403
    assert client.get(f"/v1/users/{bob['id']}/projects", headers=ch).status_code == 403
    assert client.post(f"/v1/users/{bob['id']}/projects", json={"name": "x"}, headers=ch).status_code == 403
    assert client.get(f"/v1/projects/{pid}", headers=ch).status_code == 404
    assert client.put(f"/v1/projects/{pid}", json={"name": "x"}, headers=ch).status_code == 404
    assert client.delete(f"/v1/projects/{pid}", headers=ch).status_code == 404
    assert client.get(f"/v1/projects/{pid}/simulations", headers=ch).status_code == 404
    r = client.post(f"/v1/users/{carol['id']}/projects/{pid}/simulations", json={"name": "x"}, headers=ch)
    assert r.status_code == 404
    for path in ("", "/events", "/summary", "/metrics/latency/pairwise", "/metrics/network/latency/overview",
                 "/analytics/vote-matrix"):  # fmt: skip
        assert client.get(f"/v1/simulations/{sid}{path}", headers=ch).status_code == 404, path
    assert client.delete(f"/v1/simulations/{sid}", headers=ch).status_code == 404
    assert [u["username"] for u in client.get("/v1/users", headers=ch).json()] == ["carol"]
    # the admin sees everything
    assert client.get(f"/v1/simulations/{sid}", headers=alice["h"]).status_code == 200
    assert len(client.get("/v1/users", headers=alice["h"]).json()) == 3
    r = client.delete(f"/v1/users/{bob['id']}", headers=h)
    assert r.json() == {"message": "User deleted successfully"}
    assert client.get(f"/v1/simulations/{sid}", headers=alice["h"]).status_code == 404
    assert client.get("/v1/users", headers=h).status_code == 401  # bob's token died with him


def test_errors_use_one_envelope_and_headers(client: TestClient) -> None:
    r = client.get("/v1/nothing-here")
    assert r.status_code == 404 and r.json() == {"error": "Not found", "code": "not_found"}
    r = client.patch("/v1/users", json={})
    assert r.status_code == 405 and r.json()["code"] == "method_not_allowed"
    assert r.headers["x-content-type-options"] == "nosniff" and "x-request-id" in r.headers
    r = client.get("/healthz", headers={"Accept": "application/xml"})
    assert r.status_code == 406 and r.json()["code"] == "not_acceptable"
    assert client.get("/readyz").json() == {"message": "ready"}
    text = client.get("/metrics").text
    assert "bftscope_http_requests_total" in text and "bftscope_store_bytes" in text


def test_local_mode(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "d", auth_mode="local", rate_limit_enabled=False)
    check_bind(settings, "127.0.0.1")
    for host in ("0.0.0.0", "192.168.1.5", "example.org"):
        try:
            check_bind(settings, host)
        except InputError as exc:
            assert "refused" in exc.message
        else:
            raise AssertionError(f"local mode accepted {host}")
    with TestClient(create_app(settings)) as client:
        frontend_user = "68ada24ac653f3d9c62b9a1e"  # the original frontend's hard-wired user
        r = client.post(f"/v1/users/{frontend_user}/projects", json={"name": "p"})
        assert r.status_code == 201 and r.json()["userId"] == frontend_user
        assert len(client.get(f"/v1/users/{frontend_user}/projects").json()) == 1
