"""``/v1/casper/{network}/analytics/…`` on the real app: the answers of a stored Casper network, owner-checked
like every network route, windows, and the declared response models (docs/casper.md "Analytics")."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from starlette.testclient import TestClient

from bftscope.api.app import create_app
from bftscope.config import Settings
from bftscope.control.networks import create_network
from bftscope.families.casper.store import CasperStore
from tests.api.conftest import make_user
from tests.families.casper.scenario import Truth, build
from tests.families.casper.streams import Payloads, iso_ms

ROUTES = ("blocktimes", "eras", "proposers", "signatures", "deploys")


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[TestClient, dict[str, Any], Truth]]:
    settings = Settings(data_dir=tmp_path / "data", rate_limit_enabled=False, follow_networks=False)
    with TestClient(create_app(settings)) as c:
        admin = make_user(c, "root1")
        users = {"admin": admin, "alice": make_user(c, "alice", admin["token"]),
                 "bob": make_user(c, "bob", admin["token"])}  # fmt: skip
        store = c.app.state.ctx.store  # type: ignore[attr-defined]
        for name, chain in (("cspr", "casper"), ("cmt", "cometbft"), ("quiet", "casper")):
            create_network(store, users["alice"]["id"], name, chain, ["http://127.0.0.1:7777"], {},
                           max_endpoints=8, max_per_user=20)  # fmt: skip
        events, truth = build(Payloads.load())
        CasperStore(store, store.get_or_create_run("net:cspr", "casper").id).write(events)
        yield c, users, truth


def _intervals(t: Truth, lo_ms: int, hi_ms: int) -> list[float]:
    heights = sorted({h for _, h in t.block_seen if lo_ms <= t.ts_ms[h] <= hi_ms})
    have = set(heights)
    return [float(t.ts_ms[h] - t.ts_ms[h - 1]) for h in heights if h - 1 in have]


def test_the_owner_gets_every_answer_of_the_network(api: tuple[TestClient, dict[str, Any], Truth]) -> None:
    c, users, t = api
    h = users["alice"]["h"]
    got = {route: c.get(f"/v1/casper/cspr/analytics/{route}", headers=h) for route in ROUTES}
    assert {r: g.status_code for r, g in got.items()} == dict.fromkeys(ROUTES, 200)
    body = {r: g.json() for r, g in got.items()}
    iv = _intervals(t, 0, 2**62)
    assert body["blocktimes"]["intervals"]["count"] == len(iv)
    assert body["blocktimes"]["intervals"]["p90_ms"] == pytest.approx(float(np.percentile(iv, 90)))
    assert body["blocktimes"]["window"] == {"from": None, "to": None}
    assert [e["era_id"] for e in body["eras"]["data"]] == sorted(set(t.era.values()))
    assert body["proposers"]["overall"]["blocks"] == sum(1 for (n, hh) in t.block_seen
                                                         if n == "n1:9999" and t.era[hh] in t.weights)  # fmt: skip
    assert {n["node"] for n in body["signatures"]["nodes"]} == {"n1:9999", "n2:9999"}
    assert body["deploys"]["processed"] == sum(1 for d in t.deploys.values() if d[3] is not None)
    assert body["deploys"]["accounts"] is None
    by_account = c.get("/v1/casper/cspr/analytics/deploys?byAccount=true&accounts=2", headers=h).json()
    assert len(by_account["accounts"]) == 2
    # the admin sees it too; the network's id names it as well as its name
    assert c.get("/v1/casper/cspr/analytics/eras", headers=users["admin"]["h"]).status_code == 200
    net_id = next(n["id"] for n in c.get("/v1/networks", headers=h).json() if n["name"] == "cspr")
    assert c.get(f"/v1/casper/{net_id}/analytics/eras", headers=h).json() == body["eras"]


def test_a_window_narrows_the_blocks(api: tuple[TestClient, dict[str, Any], Truth]) -> None:
    c, users, t = api
    lo, hi = t.ts_ms[112], t.ts_ms[160]
    r = c.get("/v1/casper/cspr/analytics/blocktimes", params={"from": iso_ms(lo), "to": iso_ms(hi)},
              headers=users["alice"]["h"])  # fmt: skip
    assert r.status_code == 200, r.text
    iv = _intervals(t, lo, hi)
    assert r.json()["intervals"]["count"] == len(iv) and r.json()["first_height"] == 112
    assert r.json()["intervals"]["p50_ms"] == pytest.approx(float(np.percentile(iv, 50)))
    bad = c.get("/v1/casper/cspr/analytics/eras", params={"from": iso_ms(hi), "to": iso_ms(lo)},
                headers=users["alice"]["h"])  # fmt: skip
    assert bad.status_code == 400 and "time range" in bad.json()["error"]


def test_others_networks_other_chains_and_unknown_names_are_404(
        api: tuple[TestClient, dict[str, Any], Truth]) -> None:  # fmt: skip
    c, users, _ = api
    for path, who in (("cspr", "bob"), ("cmt", "alice"), ("nope", "alice")):
        r = c.get(f"/v1/casper/{path}/analytics/blocktimes", headers=users[who]["h"])
        assert r.status_code == 404 and r.json()["error"] == "Network not found", (path, who)
    assert c.get("/v1/casper/cspr/analytics/blocktimes").status_code == 401


def test_a_network_with_nothing_stored_answers_empty(api: tuple[TestClient, dict[str, Any], Truth]) -> None:
    c, users, _ = api
    h = users["alice"]["h"]
    r = c.get("/v1/casper/quiet/analytics/blocktimes", headers=h).json()
    assert r["blocks"] == 0 and r["intervals"]["count"] == 0 and r["intervals"]["p50_ms"] is None
    assert c.get("/v1/casper/quiet/analytics/signatures", headers=h).json()["validators"] == []
    assert c.get("/v1/casper/quiet/analytics/deploys", headers=h).json()["processed"] == 0
