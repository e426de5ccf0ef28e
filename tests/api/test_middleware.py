"""The middleware stack, exercised through a tiny FastAPI app over httpx's in-process ASGI transport."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request, Response
from fastapi.responses import PlainTextResponse

from bftscope.api.middleware import MiddlewareConfig, TokenBucketLimiter, install_middleware

pytestmark = pytest.mark.anyio

ALLOWED = "http://localhost:3000"
SECURITY = {
    "x-content-type-options": "nosniff",
    "x-xss-protection": "1; mode=block",
    "x-frame-options": "DENY",
    "content-security-policy": "default-src 'self'",
    "referrer-policy": "strict-origin-when-cross-origin",
}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_app(config: MiddlewareConfig | None = None, clock: FakeClock | None = None, hook: Any = None) -> FastAPI:
    config = config or MiddlewareConfig()
    app = FastAPI()

    @app.get("/items/{item_id}")
    async def get_item(item_id: str, request: Request) -> dict[str, str]:
        return {"item_id": item_id, "request_id": request.state.request_id}

    @app.post("/items")
    async def create_item(payload: dict[str, Any]) -> dict[str, int]:
        return {"keys": len(payload)}

    @app.post("/process")
    async def process() -> dict[str, bool]:
        return {"ok": True}

    async def count_body(request: Request) -> dict[str, int]:
        return {"received": sum([len(chunk) async for chunk in request.stream()])}

    app.post("/files/upload")(count_body)
    app.put("/files/{name}")(count_body)
    app.post("/v1/users/{user}/projects/{project}/simulations")(count_body)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/metrics")
    async def metrics() -> PlainTextResponse:
        return PlainTextResponse("up 1\n")

    @app.get("/server")
    async def server_header() -> Response:
        return Response(b"{}", media_type="application/json", headers={"Server": "uvicorn"})

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("kaboom")

    limiter = TokenBucketLimiter(config.rate_limit_per_s, config.rate_limit_burst, clock=clock) if clock else None
    install_middleware(app, config, hook, rate_limiter=limiter)
    return app


def client(app: FastAPI, base: str = "http://testserver", peer: str = "127.0.0.1") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(peer, 5000), raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url=base)


async def chunks(count: int, size: int, seen: list[int] | None = None) -> AsyncIterator[bytes]:
    for _ in range(count):
        if seen is not None:
            seen.append(size)
        yield b"x" * size


def assert_envelope(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    body: dict[str, Any] = response.json()
    assert body["code"] == code and isinstance(body["error"], str)
    return body


# --- security headers ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("path", "status"), [("/items/1", 200), ("/nope", 404), ("/boom", 500), ("/server", 200)])
async def test_security_headers_on_every_response(path: str, status: int) -> None:
    async with client(make_app()) as c:
        response = await c.get(path)
    assert response.status_code == status
    for name, value in SECURITY.items():
        assert response.headers[name] == value
    assert "server" not in response.headers
    assert "strict-transport-security" not in response.headers  # plain http
    if status == 500:
        assert_envelope(response, 500, "internal_error")
        assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"])


async def test_docs_get_a_csp_that_lets_swagger_ui_load() -> None:
    async with client(make_app()) as c:
        docs = await c.get("/docs", headers={"Accept": "text/html"})
        api = await c.get("/openapi.json")
    assert docs.status_code == 200 and "swagger-ui" in docs.text
    assert "https://cdn.jsdelivr.net" in docs.headers["content-security-policy"]
    assert "'unsafe-inline'" in docs.headers["content-security-policy"]
    assert api.headers["content-security-policy"] == "default-src 'self'"


@pytest.mark.parametrize(
    ("base", "peer", "forwarded", "trusted", "hsts"),
    [
        ("https://testserver", "127.0.0.1", None, (), True),
        ("http://testserver", "127.0.0.1", None, (), False),
        ("http://testserver", "198.51.100.7", "https", (), False),  # untrusted peer: header ignored
        ("http://testserver", "10.1.2.3", "https", ("10.0.0.0/8",), True),
        ("http://testserver", "10.1.2.3", "http", ("10.0.0.0/8",), False),
    ],
)
async def test_hsts_only_over_tls(
    base: str, peer: str, forwarded: str | None, trusted: tuple[str, ...], hsts: bool
) -> None:
    headers = {"X-Forwarded-Proto": forwarded} if forwarded else {}
    async with client(make_app(MiddlewareConfig(trusted_proxies=trusted)), base, peer) as c:
        response = await c.get("/items/1", headers=headers)
    assert response.headers.get("strict-transport-security") == (
        "max-age=31536000; includeSubDomains" if hsts else None
    )


async def test_hsts_can_be_turned_off() -> None:
    async with client(make_app(MiddlewareConfig(hsts=False)), "https://testserver") as c:
        response = await c.get("/items/1")
    assert "strict-transport-security" not in response.headers


# --- CORS ---------------------------------------------------------------------------------------------


async def test_cors_allowed_and_disallowed_origins() -> None:
    async with client(make_app()) as c:
        allowed = await c.get("/items/1", headers={"Origin": ALLOWED})
        denied = await c.get("/items/1", headers={"Origin": "http://evil.example"})
    assert allowed.headers["access-control-allow-origin"] == ALLOWED
    assert allowed.headers["access-control-allow-credentials"] == "true"
    assert allowed.headers["access-control-expose-headers"] == "X-Request-ID, Retry-After"
    assert "Origin" in allowed.headers["vary"]
    assert "access-control-allow-origin" not in denied.headers
    assert "access-control-allow-credentials" not in denied.headers


async def test_options_answered_204_before_validation_and_rate_limit() -> None:
    app = make_app(MiddlewareConfig(rate_limit_burst=1), clock=FakeClock())
    headers = {"Origin": ALLOWED, "Access-Control-Request-Method": "POST", "User-Agent": "sqlmap/1.0"}
    async with client(app) as c:
        responses = [await c.options("/items", headers=headers) for _ in range(3)]
        denied = await c.options("/anything", headers={"Origin": "http://evil.example"})
    for response in responses:
        assert response.status_code == 204 and response.content == b""
        assert response.headers["access-control-allow-origin"] == ALLOWED
        assert response.headers["access-control-allow-methods"] == "POST, OPTIONS, GET, PUT, DELETE"
        assert "X-CSRF-Token" in response.headers["access-control-allow-headers"]
        assert response.headers["access-control-max-age"] == "86400"
        assert response.headers["x-frame-options"] == "DENY"
    assert denied.status_code == 204 and "access-control-allow-origin" not in denied.headers


# --- validation ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "headers", "body", "status"),
    [
        ("/items", {"Content-Type": "text/plain"}, b'{"a": 1}', 415),
        ("/items", {"Content-Type": "text/plain; charset=application/json"}, b'{"a": 1}', 415),
        ("/items", {}, b'{"a": 1}', 415),
        ("/items", {"Content-Type": "application/json; charset=utf-8"}, b'{"a": 1}', 200),
        ("/process", {}, b"", 200),  # a bare POST needs no Content-Type
        ("/files/upload", {"Content-Type": "multipart/form-data; boundary=x"}, b"--x--", 200),
    ],
)
async def test_content_type(path: str, headers: dict[str, str], body: bytes, status: int) -> None:
    async with client(make_app()) as c:
        response = await c.post(path, content=body, headers=headers)
    if status == 415:
        body_json = assert_envelope(response, 415, "unsupported_media_type")
        assert body_json["error"] == "Content-Type must be application/json or multipart/form-data"
    else:
        assert response.status_code == status


async def test_chunked_body_needs_a_content_type() -> None:
    async with client(make_app()) as c:
        response = await c.post("/items", content=chunks(2, 10), headers={"Content-Type": "text/plain"})
    assert_envelope(response, 415, "unsupported_media_type")


@pytest.mark.parametrize(
    ("path", "accept", "ok"),
    [
        ("/items/1", "application/json", True),
        ("/items/1", "*/*", True),
        ("/items/1", "application/*", True),
        ("/items/1", "text/html, application/json;q=0.9", True),
        ("/items/1", "text/html", False),
        ("/items/1", "application/xml", False),
        ("/items/1", "application/json;q=0", False),
        ("/metrics", "text/plain; version=0.0.4", True),
        ("/metrics", "application/openmetrics-text; version=1.0.0", True),
        ("/docs", "text/html", True),
    ],
)
async def test_accept(path: str, accept: str, ok: bool) -> None:
    async with client(make_app()) as c:
        response = await c.get(path, headers={"Accept": accept})
    if ok:
        assert response.status_code == 200
    else:
        body = assert_envelope(response, 406, "not_acceptable")
        assert body["error"] == "API only supports application/json responses"


@pytest.mark.parametrize("agent", ["sqlmap/1.7", "Mozilla/5.0 (Nmap Scripting Engine)", "Nikto/2.5"])
async def test_scanners_rejected(agent: str) -> None:
    async with client(make_app()) as c:
        response = await c.get("/items/1", headers={"User-Agent": agent})
    assert assert_envelope(response, 403, "forbidden")["error"] == "Request rejected"


# --- rate limit ---------------------------------------------------------------------------------------


async def test_rate_limit_refuses_then_refills() -> None:
    clock = FakeClock()
    app = make_app(MiddlewareConfig(rate_limit_burst=3, rate_limit_per_s=0.25), clock=clock)
    async with client(app) as c:
        assert [(await c.get("/items/1")).status_code for _ in range(3)] == [200, 200, 200]
        refused = await c.get("/items/1", headers={"Origin": ALLOWED})
        assert assert_envelope(refused, 429, "rate_limited")["retry_after"] == 4  # 1 token at 0.25/s
        assert refused.headers["retry-after"] == "4"
        # Outer layers still decorate the refusal: the browser can read it, and it is traceable.
        assert refused.headers["access-control-allow-origin"] == ALLOWED
        assert refused.headers["x-frame-options"] == "DENY" and refused.headers["x-request-id"]
        clock.now += 3.0  # 0.75 token: still refused, retry in 1 s (rounded up)
        assert (await c.get("/items/1")).headers["retry-after"] == "1"
        clock.now += 1.0
        assert (await c.get("/items/1")).status_code == 200
        assert (await c.get("/items/1")).status_code == 429


async def test_rate_limit_exempt_paths_and_switch() -> None:
    clock = FakeClock()
    async with client(make_app(MiddlewareConfig(rate_limit_burst=1), clock=clock)) as c:
        await c.get("/items/1")
        assert (await c.get("/items/1")).status_code == 429
        for path in ("/healthz", "/metrics"):
            assert [(await c.get(path)).status_code for _ in range(5)] == [200] * 5
    async with client(make_app(MiddlewareConfig(rate_limit_burst=1, rate_limit_enabled=False))) as c:
        assert [(await c.get("/items/1")).status_code for _ in range(5)] == [200] * 5


async def test_forwarded_for_ignored_from_untrusted_peer() -> None:
    app = make_app(MiddlewareConfig(rate_limit_burst=2), clock=FakeClock())
    async with client(app, peer="198.51.100.7") as c:
        statuses = [
            (await c.get("/items/1", headers={"X-Forwarded-For": f"203.0.113.{i}"})).status_code for i in range(4)
        ]
    assert statuses == [200, 200, 429, 429]


async def test_forwarded_for_honoured_from_trusted_proxy() -> None:
    config = MiddlewareConfig(rate_limit_burst=2, trusted_proxies=("10.0.0.0/8",))
    async with client(make_app(config, clock=FakeClock()), peer="10.0.0.2") as c:

        async def status(forwarded: str) -> int:
            return (await c.get("/items/1", headers={"X-Forwarded-For": forwarded})).status_code

        # The right-most untrusted hop is the client; a spoofed left part does not buy a fresh bucket.
        assert [await status("203.0.113.1"), await status("6.6.6.6, 203.0.113.1")] == [200, 200]
        assert await status("7.7.7.7, 203.0.113.1, 10.0.0.9") == 429
        assert await status("203.0.113.2") == 200


def test_token_bucket_evicts_idle_and_caps_clients() -> None:
    clock = FakeClock()
    limiter = TokenBucketLimiter(10.0, 5, clock=clock, idle_ttl_s=3600, max_clients=3)
    for key in "abcd":
        assert limiter.acquire(key) is None
    assert len(limiter) == 3  # "a", the least recently seen, was dropped
    clock.now += 3601
    assert limiter.acquire("e") is None
    assert len(limiter) == 1
    for _ in range(4):
        limiter.acquire("e")
    assert limiter.acquire("e") == pytest.approx(0.1)  # empty bucket: one token in 1/10 s
    clock.now += 0.05
    assert limiter.acquire("e") == pytest.approx(0.05)  # continuous refill: half a token so far


# --- body limit ---------------------------------------------------------------------------------------

SMALL = MiddlewareConfig(max_body_bytes=1024)


async def test_declared_length_over_limit_is_413() -> None:
    payload = json.dumps({"blob": "x" * 2000})
    async with client(make_app(SMALL)) as c:
        response = await c.post("/items", content=payload, headers={"Content-Type": "application/json"})
    assert_envelope(response, 413, "payload_too_large")


async def test_chunked_body_over_limit_is_413_without_reading_the_rest() -> None:
    seen: list[int] = []
    async with client(make_app(SMALL)) as c:
        body = chunks(100, 512, seen)
        response = await c.post("/items", content=body, headers={"Content-Type": "application/json"})
        ok = await c.post("/items", content=chunks(1, 0), headers={"Content-Type": "application/json"})
    assert_envelope(response, 413, "payload_too_large")
    assert sum(seen) <= 1024 + 512  # stopped at the first chunk past the limit
    assert ok.status_code in (400, 422)  # an empty chunked body reaches the app (and is invalid JSON)


UPLOADS = MiddlewareConfig(
    max_body_bytes=1024,
    upload_routes=("POST /files/upload",),
    multipart_upload_routes=("POST /v1/users/{user}/projects/{project}/simulations",),
)


@pytest.mark.parametrize(
    ("method", "path", "content_type", "status"),
    [
        ("POST", "/files/upload", "application/octet-stream", 415),  # exempt from the size, not from validation
        ("POST", "/files/upload", "multipart/form-data; boundary=x", 200),
        ("POST", "/v1/users/u1/projects/p1/simulations", "multipart/form-data; boundary=x", 200),
        ("POST", "/v1/users/u1/projects/p1/simulations", "application/json", 413),
        # the same path served by another route is no upload, whatever its spelling
        ("PUT", "/files/upload", "multipart/form-data; boundary=x", 413),
    ],
)
async def test_upload_routes_are_exempt(method: str, path: str, content_type: str, status: int) -> None:
    async with client(make_app(UPLOADS)) as c:
        response = await c.request(method, path, content=chunks(20, 1024), headers={"Content-Type": content_type})
    assert response.status_code == status
    if status == 200:
        assert response.json() == {"received": 20 * 1024}


async def test_invalid_content_length_is_400() -> None:
    app = make_app(SMALL)
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"{}", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
        "path": "/items", "raw_path": b"/items", "query_string": b"", "root_path": "", "client": ("127.0.0.1", 1),
        "server": ("testserver", 80), "headers": [(b"content-type", b"application/json"), (b"content-length", b"1e3")],
    }  # fmt: skip
    await app(scope, receive, send)
    assert sent[0]["status"] == 400
    assert json.loads(sent[1]["body"])["code"] == "invalid_input"


# --- request id, access log, metrics ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("incoming", "kept"),
    [("abc-123.X_y", True), ("a" * 128, True), ("a" * 129, False), ("bad id!", False), (None, False)],
)
async def test_request_id(incoming: str | None, kept: bool) -> None:
    headers = {"X-Request-ID": incoming} if incoming is not None else {}
    async with client(make_app()) as c:
        response = await c.get("/items/1", headers=headers)
    request_id = response.headers["x-request-id"]
    assert response.json()["request_id"] == request_id  # the route sees the same id
    if kept:
        assert request_id == incoming
    else:
        assert re.fullmatch(r"[0-9a-f]{32}", request_id)


async def test_access_log_line(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="bftscope.access")
    async with client(make_app()) as c:
        response = await c.get("/items/42?token=s3cr3t", headers={"Authorization": "Bearer t0p-s3cr3t"})
        refused = await c.post("/items", content=b"x", headers={"Content-Type": "text/plain"})
    records = [r for r in caplog.records if r.name == "bftscope.access"]
    assert len(records) == 2
    line = json.loads(records[0].getMessage())
    assert set(line) == {"request_id", "method", "path", "status", "duration_ms", "client", "bytes_out"}
    assert line["request_id"] == response.headers["x-request-id"]
    assert (line["method"], line["path"], line["status"]) == ("GET", "/items/42", 200)
    assert line["client"] == "127.0.0.1" and line["bytes_out"] == len(response.content)
    assert line["duration_ms"] >= 0
    assert "s3cr3t" not in records[0].getMessage()
    assert json.loads(records[1].getMessage())["status"] == refused.status_code == 415


async def test_metrics_hook_gets_route_template() -> None:
    calls: list[tuple[str, str, int, float]] = []
    async with client(make_app(hook=lambda *args: calls.append(args))) as c:
        await c.get("/items/42")
        await c.get("/no/such/path")
    assert [call[:3] for call in calls] == [("GET", "/items/{item_id}", 200), ("GET", "<unmatched>", 404)]
    assert all(isinstance(call[3], float) and call[3] >= 0 for call in calls)


async def test_broken_metrics_hook_does_not_break_the_response(caplog: pytest.LogCaptureFixture) -> None:
    def hook(*args: object) -> None:
        raise ValueError("backend down")

    caplog.set_level(logging.ERROR)
    async with client(make_app(hook=hook)) as c:
        assert (await c.get("/items/1")).status_code == 200
    assert "metrics hook failed" in caplog.text


@pytest.mark.parametrize(
    "kwargs", [{"cors_origins": ("*",)}, {"cors_origins": ("http://a.example/",)}, {"trusted_proxies": ("proxy",)}]
)
def test_config_rejects_unsafe_values(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        MiddlewareConfig(**kwargs)
