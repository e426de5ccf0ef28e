"""Hostile input at the HTTP edge: integers out of any column's range, names with control characters,
bodies that cannot be parsed, trailing-slash redirects and ``/metrics`` access. Each must get a clear 4xx
in the one envelope with a documented code — never a 500, never an absolute redirect built from ``Host``.

The run behind the simulation is real: the 28 CometBFT 1.x JSON log lines, uploaded and processed.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from bftscope.api.app import create_app
from bftscope.api.errors import ERROR_CODES
from bftscope.config import Settings
from tests.api.conftest import make_user, wait_processed

BIG = "9" * 20  # past int64
HUGE = "9" * 40


class Setup:
    def __init__(self, client: TestClient, log: Path) -> None:
        self.client = client
        self.user = make_user(client, "alice")
        self.h = self.user["h"]
        uid = self.user["id"]
        self.pid = client.post(f"/v1/users/{uid}/projects", json={"name": "p"}, headers=self.h).json()["id"]
        sim = client.post(f"/v1/users/{uid}/projects/{self.pid}/simulations", data={"name": "s"}, headers=self.h,
                          files=[("logfiles", ("node0.jsonl", log.read_bytes(), "text/plain"))]).json()  # fmt: skip
        self.sid = sim["id"]
        assert wait_processed(client, self.sid, self.h)["status"] == "processed"


@pytest.fixture
def setup(tmp_path: Path, json_debug_lines: Path) -> Iterator[Setup]:
    settings = Settings(data_dir=tmp_path / "d", rate_limit_enabled=False)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield Setup(client, json_debug_lines)


@pytest.mark.parametrize(
    "query",
    [f"segment={BIG}", f"cursor=c_{HUGE}_1", f"cursor=c_1_{HUGE}", f"before=c_{HUGE}_1", f"before=c_-{HUGE}_1",
     f"height={HUGE}", f"minHeight={BIG}", f"maxHeight=-{HUGE}"],
)  # fmt: skip
def test_event_integers_out_of_range_are_400(setup: Setup, query: str) -> None:
    r = setup.client.get(f"/v1/simulations/{setup.sid}/events?{query}", headers=setup.h)
    assert r.status_code == 400, r.text
    assert r.json()["code"] == "invalid_input" and "range" in r.json()["error"]


def test_metric_page_out_of_range_is_400(setup: Setup) -> None:
    r = setup.client.get(f"/v1/simulations/{setup.sid}/metrics/latency/votes?page={BIG}", headers=setup.h)
    assert r.status_code == 400 and r.json()["code"] == "invalid_input", r.text
    r = setup.client.get(f"/v1/simulations/{setup.sid}/metrics/latency/votes?page=2", headers=setup.h)
    assert r.status_code == 200


def test_no_query_or_path_integer_anywhere_gives_a_5xx(setup: Setup) -> None:
    """Walk the OpenAPI document: every GET route, every query parameter and every non-id path parameter
    set to numbers past int64 (either sign), on the real simulation."""
    spec = setup.client.get("/openapi.json").json()
    ids = {"userId": setup.user["id"], "projectId": setup.pid, "id": setup.sid, "otherId": setup.sid}
    tried = 0
    for template, item in spec["paths"].items():
        op = item.get("get")
        if op is None:
            continue
        params = op.get("parameters", [])
        path_vals = {p["name"]: ids.get(p["name"], HUGE) for p in params if p["in"] == "path"}
        queries = [p["name"] for p in params if p["in"] == "query"]
        for value in (BIG, "-" + HUGE):
            path = template.format(**{k: (v if k in ids else value) for k, v in path_vals.items()})
            for q in queries or [None]:
                url = path + (f"?{q}={value}" if q else "")
                r = setup.client.get(url, headers=setup.h)
                tried += 1
                assert r.status_code < 500, (url, r.text)
    assert tried > 60


BAD_NAMES = ["a\x00b", "evil\u202etxt.exe", "tab\tname", "bell\x07", "zero\u200bwidth", "line\nbreak"]


@pytest.mark.parametrize("bad", BAD_NAMES)
def test_names_with_control_characters_are_refused(setup: Setup, bad: str) -> None:
    c, h, uid = setup.client, setup.h, setup.user["id"]
    answers = [
        c.post(f"/v1/users/{uid}/projects", json={"name": bad}, headers=h),
        c.put(f"/v1/projects/{setup.pid}", json={"name": bad}, headers=h),
        c.post(f"/v1/users/{uid}/projects/{setup.pid}/simulations", json={"name": bad}, headers=h),
        c.post(f"/v1/users/{uid}/projects/{setup.pid}/simulations", data={"name": bad}, headers=h,
               files=[("logfiles", ("x.log", b"x\n", "text/plain"))]),
        c.put(f"/v1/simulations/{setup.sid}", json={"name": bad}, headers=h),
        c.post("/v1/users", json={"username": bad, "email": "x@corp.io"}, headers=h),
        c.post("/v1/users", json={"username": "bobby", "email": f"b{bad}@corp.io"}, headers=h),
    ]  # fmt: skip
    for r in answers:
        assert r.status_code == 400 and r.json()["code"] == "invalid_input", (r.request.url, r.text)
    # The JSON simulation create says what is wrong with the name, not that it is missing.
    assert "required" not in answers[2].json()["error"], answers[2].text
    names = [p["name"] for p in c.get(f"/v1/users/{uid}/projects", headers=h).json()]
    names += [s["name"] for s in c.get(f"/v1/users/{uid}/simulations", headers=h).json()]
    assert names == ["p", "s"]  # nothing was stored or renamed


def test_body_parse_errors_use_a_documented_code(setup: Setup) -> None:
    r = setup.client.post(f"/v1/users/{setup.user['id']}/projects", content=b'{"name": "\xff"}',
                          headers={**setup.h, "Content-Type": "application/json"})  # fmt: skip
    assert r.status_code == 400 and r.json()["code"] == "invalid_input", r.text


def test_every_error_code_is_declared_and_documented(setup: Setup) -> None:
    schema = setup.client.get("/openapi.json").json()["components"]["schemas"]["ErrorBody"]
    assert sorted(schema["properties"]["code"]["enum"]) == sorted(ERROR_CODES)
    docs = (Path(__file__).resolve().parents[2] / "docs" / "api.md").read_text()
    section = docs[docs.index("## Errors"):]
    assert {code for code in ERROR_CODES if f"`{code}`" not in section} == set()
    for cls in _error_classes():
        assert cls.code in ERROR_CODES and ERROR_CODES[cls.code] == cls.status, cls


def _error_classes() -> list[Any]:
    from bftscope import errors
    from bftscope.api.middleware import envelope

    seen: list[Any] = []
    todo = [errors.BftscopeError]
    while todo:
        cls = todo.pop()
        seen.append(cls)
        todo.extend(cls.__subclasses__())
    assert envelope.RateLimitedError in seen
    return seen


def test_trailing_slash_redirect_is_relative(setup: Setup) -> None:
    c = setup.client
    r = c.get("/v1/users/?x=1", headers={**setup.h, "Host": "evil.example"}, follow_redirects=False)
    assert r.status_code == 307 and r.headers["location"] == "/v1/users?x=1"
    r = c.get(f"/v1/simulations/{setup.sid}/summary/", headers=setup.h, follow_redirects=False)
    assert r.headers["location"] == f"/v1/simulations/{setup.sid}/summary"
    r = c.get("/v1/simulations/%E2%82%AC%0D%0A/summary/?a=%0D", headers=setup.h, follow_redirects=False)
    assert r.headers["location"] == "/v1/simulations/%E2%82%AC%0D%0A/summary?a=%0D"
    for path in ("//evil.example/", "/v1/nothing/"):
        r = c.get(path, headers=setup.h, follow_redirects=False)
        assert r.status_code == 404 and r.json()["code"] == "not_found"
    assert re.fullmatch(r"/v1/users", c.get("/v1/users/", headers=setup.h).request.url.path)


def _metrics(settings: Settings, peer: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    with TestClient(create_app(settings), client=(peer, 5000)) as client:
        token = make_user(client, "alice")["h"]
        r = client.get("/metrics", headers={**(headers or {}), **({} if headers is None else token)})
        return r.status_code, r.json()["code"] if r.status_code != 200 else r.text


def test_metrics_open_by_default_and_restrictable(tmp_path: Path) -> None:
    def cfg(**kw: Any) -> Settings:
        return Settings(data_dir=tmp_path / str(len(list(tmp_path.iterdir()))), rate_limit_enabled=False, **kw)

    assert _metrics(cfg(), "127.0.0.1")[0] == 200
    assert _metrics(cfg(), "203.0.113.9")[0] == 200
    # an allow-list of client addresses
    allow = {"metrics_allowed_clients": ["10.0.0.0/8", "127.0.0.1"]}
    assert _metrics(cfg(**allow), "10.1.2.3")[0] == 200
    assert _metrics(cfg(**allow), "::ffff:10.1.2.3")[0] == 200
    assert _metrics(cfg(**allow), "203.0.113.9") == (403, "forbidden")
    # behind a trusted proxy the forwarded client counts, not the proxy
    proxied = {**allow, "trusted_proxies": ["192.0.2.1"]}
    assert _metrics(cfg(**proxied), "192.0.2.1", {"X-Forwarded-For": "203.0.113.9"})[0] == 403
    # a token
    assert _metrics(cfg(metrics_require_token=True), "127.0.0.1") == (401, "unauthorized")
    status, text = _metrics(cfg(metrics_require_token=True), "127.0.0.1", {})
    assert status == 200 and "bftscope_http_requests_total" in text
    with pytest.raises(ValueError, match="not an IP address"):
        cfg(metrics_allowed_clients=["intranet"])
