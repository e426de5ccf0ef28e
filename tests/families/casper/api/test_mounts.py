"""Where the Casper routes answer and for whom: ``/v1/casper/{network}/`` with the API's token and ownership,
the root mount only when ``BFTSCOPE_CASPER_ROOT_NETWORK`` names a network (then without a token), the paths
each mount claims, hostile parameter values, and the rest of the API unchanged beside them."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from pydantic import ValidationError
from starlette.testclient import TestClient

from bftscope.api.app import create_app
from bftscope.control import networks
from tests.families.casper.api.conftest import (
    NETWORK,
    CasperApi,
    block_copy,
    casper_settings,
    data_file,
    hex64,
    inner_of,
    key66,
    open_api,
)

NOT_FOUND = {"error": "Network not found", "code": "not_found"}


def _some_blocks(api: CasperApi) -> None:
    api.write([block_copy(h, era=1, ts_ms=1_700_000_000_000 + h, proposer=key66(1)) for h in range(1, 6)])


def test_a_network_is_its_owners(casper_api: CasperApi) -> None:
    _some_blocks(casper_api)
    c = casper_api.client
    assert c.get(casper_api.url("/blocks"), headers=casper_api.owner).json()["itemCount"] == 5
    assert c.get(casper_api.url("/blocks"), headers=casper_api.admin).json()["itemCount"] == 5
    for path in ("/blocks", f"/block/{hex64('block', 1)}", "/sidecar/block", "/block/a/b", "/sidecar/nothing"):
        other = c.get(casper_api.url(path), headers=casper_api.other)
        assert (other.status_code, other.json()) == (404, NOT_FOUND), path
        missing = c.get(f"/v1/casper/nosuch{path}", headers=casper_api.owner)
        assert (missing.status_code, missing.json()) == (404, NOT_FOUND), path
        anonymous = c.get(casper_api.url(path))
        assert anonymous.status_code == 401 and anonymous.json()["code"] == "unauthorized", path
    # a network of another chain is not a Casper network
    networks.create_network(casper_api.store, "0" * 24, "tm", "cometbft", ["http://127.0.0.1:26657"], {},
                            max_endpoints=8, max_per_user=20)  # fmt: skip
    assert c.get("/v1/casper/tm/blocks", headers=casper_api.admin).json() == NOT_FOUND
    assert c.get("/v1/casper/bad%20name/blocks", headers=casper_api.admin).status_code == 400


def test_the_v1_mount_claims_only_its_own_prefixes(casper_api: CasperApi) -> None:
    c, h = casper_api.client, casper_api.owner
    for path in ("/block", "/block/", "/block/a/b", "/blocks/x", "/deploy", "/deploy/a/b/c", "/accountDeploys",
                 f"/accountDeploys/{key66(1)}/more"):  # fmt: skip
        r = c.get(casper_api.url(path), headers=h)
        assert (r.status_code, r.text) == (400, "Bad Request"), path
    # a real route's path with a stray slash: redirected, relative, query kept (as the rest of the API)
    for path in ("/blocks/?limit=2", f"/accountDeploys/{key66(1)}/"):
        r = c.get(casper_api.url(path), headers=h, follow_redirects=False)
        assert (r.status_code, r.headers["location"]) == (307, casper_api.url(path.replace("/?", "?").rstrip("/")))
    # other paths under the network are left to the family's other routers (or the API's 404)
    assert c.get(casper_api.url("/nothing"), headers=h).json() == {"error": "Not found", "code": "not_found"}


@pytest.fixture
def root_api(tmp_path: Path) -> Any:
    with TestClient(create_app(casper_settings(tmp_path, casper_root_network=NETWORK))) as client:
        yield open_api(client)


def test_the_root_mount_serves_the_named_network_without_a_token(root_api: CasperApi) -> None:
    _some_blocks(root_api)
    root_api.write([data_file("sidecar_legacy_fixtures/raw_legacy_block_added.json")])
    c = root_api.client
    root, v1 = c.get("/blocks?limit=2"), c.get(root_api.url("/blocks?limit=2"), headers=root_api.owner)
    assert root.status_code == 200
    assert root.content == v1.content.replace(root_api.url("/blocks").encode(), b"/blocks")
    assert root.json()["pages"][0]["url"] == "/blocks?limit=2&page=1"
    legacy = inner_of("sidecar_legacy_fixtures/raw_legacy_block_added.json")
    assert c.get(f"/block/{legacy['block_hash']}").json()["height"] == legacy["block"]["header"]["height"]
    assert c.get("/sidecar/block").json() == legacy
    assert c.get(f"/deploy/{'ab' * 32}").text == "Deploy not found."
    assert c.get("/blocks/", follow_redirects=False).headers["location"] == "/blocks"
    for path in ("/block", "/block/a/b", "/blocks/x", "/deploy", "/accountDeploys", "/deploy/x/y"):
        r = c.get(path)
        assert (r.status_code, r.text) == (400, "Bad Request"), path
    assert c.get("/sidecar/x/y").json() == {"code": 400, "message": "Invalid request path provided"}


def test_the_root_mount_leaves_the_api_alone(root_api: CasperApi) -> None:
    c = root_api.client
    for path, status in (("/healthz", 200), ("/readyz", 200), ("/metrics", 200), ("/openapi.json", 200),
                         ("/docs", 200), ("/v1/users", 401), ("/v1/networks", 401),
                         (f"/v1/simulations/{'0' * 24}/metrics/latency/stats", 401),
                         (f"/v1/simulations/{'0' * 24}/events", 401), ("/nothing", 404), ("/", 404)):  # fmt: skip
        r = c.get(path)
        assert r.status_code == status, (path, r.status_code, r.text[:200])
    assert c.get("/v1/networks", headers=root_api.owner).status_code == 200
    assert "casper" in {t for p in c.get("/openapi.json").json()["paths"].values() for op in p.values()
                        for t in op.get("tags", [])}  # fmt: skip


def test_the_root_mount_is_off_by_default(casper_api: CasperApi) -> None:
    _some_blocks(casper_api)
    for path in ("/blocks", f"/block/{hex64('block', 1)}", "/block/a/b", "/sidecar/block", "/sidecar/x"):
        r = casper_api.client.get(path, headers=casper_api.owner)
        assert (r.status_code, r.json()) == (404, {"error": "Not found", "code": "not_found"}), path


def test_the_root_mount_before_its_network_exists(tmp_path: Path) -> None:
    with TestClient(create_app(casper_settings(tmp_path, casper_root_network="later"))) as c:
        assert c.get("/blocks").json() == {"data": [], "pageCount": 0, "itemCount": 0, "pages": []}
        assert c.get("/sidecar/block").json() == {"code": 404, "message": "Query returned no results"}


HOSTILE = ["'", "1'; DROP TABLE casper_blocks; --", "1;", '"', "9" * 40, "-1", "1e3", "0x10", "１２",
           "é" * 70, "\u202e", "%00", "\x00", "a" * 3000, "NULL", "1 OR 1=1"]  # fmt: skip


def test_hostile_values_get_a_400_never_a_500(casper_api: CasperApi) -> None:
    _some_blocks(casper_api)
    c, h = casper_api.client, casper_api.owner
    seen = set()
    for value in HOSTILE:
        for name in ("era", "proposer", "from", "to", "minHeight", "maxHeight", "cursor", "limit", "page"):
            r = c.get(casper_api.url("/blocks"), params={name: value}, headers=h)
            seen.add(r.status_code)
            assert r.status_code in (200, 400), (name, value, r.status_code, r.text)
            if r.status_code == 400:
                assert r.text.startswith("Bad Request: "), (name, value, r.text)
        for name in ("state", "from", "to", "cursor", "limit"):
            r = c.get(casper_api.url(f"/accountDeploys/{key66(1)}"), params={name: value}, headers=h)
            assert r.status_code in (200, 400), (name, value, r.status_code, r.text)
        for path in ("/block/{}", "/deploy/{}", "/accountDeploys/{}", "/sidecar/block/{}", "/sidecar/deploy/{}",
                     "/sidecar/deploy/processed/{}", "/sidecar/faults/{}", "/sidecar/signatures/{}",
                     "/sidecar/step/{}"):  # fmt: skip
            r = c.get(casper_api.url(path.format(quote(value, safe=""))), headers=h)
            assert r.status_code in (400, 404), (path, value, r.status_code, r.text)
    assert 400 in seen
    # nothing was executed: the blocks are all still there
    assert c.get(casper_api.url("/blocks"), headers=h).json()["itemCount"] == 5


def test_the_root_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BFTSCOPE_CASPER_ROOT_NETWORK", "")
    assert casper_settings(tmp_path).casper_root_network is None  # set but empty: off
    monkeypatch.setenv("BFTSCOPE_CASPER_ROOT_NETWORK", "main.net")
    assert casper_settings(tmp_path).casper_root_network == "main.net"
    monkeypatch.setenv("BFTSCOPE_CASPER_ROOT_NETWORK", "bad name")
    with pytest.raises(ValidationError):
        casper_settings(tmp_path)
