"""``/v1/networks`` on the real app with a fake follower in the family's seam: ownership, limits, redaction,
the follower's life with the resource, status, the live feed and the per-network metrics."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from bftscope.api.app import create_app
from bftscope.config import Settings
from bftscope.families import registry
from tests.api.conftest import make_user
from tests.live.fakes import FakeFollower, vote

SECRET_URL = "https://alice:s3cret@rpc.example.org:443/?apikey=k3y"


class Followers:
    def __init__(self) -> None:
        self.made: list[FakeFollower] = []

    def __call__(self, name: str, endpoints: Any, sink: Any, *, store: Any, run: str,
                 settings: Any = None) -> FakeFollower:
        f = FakeFollower(name, list(endpoints), sink, height=7, round=1, node_height=9)
        self.made.append(f)
        return f

    def of(self, name: str) -> FakeFollower:
        return [f for f in self.made if f.name == name][-1]


@pytest.fixture
def followers(monkeypatch: pytest.MonkeyPatch) -> Followers:
    made = Followers()
    monkeypatch.setattr(registry.default_family(), "follower", made)
    return made


def app_client(tmp_path: Path, **settings: Any) -> TestClient:
    return TestClient(create_app(Settings(data_dir=tmp_path / "data", rate_limit_enabled=False, **settings)))


@pytest.fixture
def net_client(tmp_path: Path, followers: Followers) -> Iterator[TestClient]:
    with app_client(tmp_path, feed_queue_batches=4) as c:
        yield c


def create(c: TestClient, user: dict[str, Any], name: str = "testnet", **body: Any) -> Any:
    return c.post("/v1/networks", json={"name": name, "endpoints": ["http://127.0.0.1:26657"], **body},
                  headers=user["h"])  # fmt: skip


def test_crud_ownership_and_the_follower_life(net_client: TestClient, followers: Followers) -> None:
    c = net_client
    admin, alice, bob = make_user(c, "root1"), None, None
    alice, bob = make_user(c, "alice", admin["token"]), make_user(c, "bob", admin["token"])
    r = create(c, alice, "cosmoshub", endpoints=[SECRET_URL, "wss://rpc2.example.org/websocket"],
               alerts={"missedVotes": 5, "stalledSeconds": None})  # fmt: skip
    assert r.status_code == 201, r.text
    net = r.json()
    assert net["run"] == "net:cosmoshub" and net["userId"] == alice["id"] and net["chain"] == "cometbft"
    assert net["endpoints"] == ["https://***@rpc.example.org:443/?apikey=***", "wss://rpc2.example.org/websocket"]
    assert net["alerts"]["missedVotes"] == 5 and net["alerts"]["stalledSeconds"] is None
    assert net["alerts"]["roundEscalation"] == 3  # the server's default where not overridden
    f = followers.of("cosmoshub")
    assert f.endpoints == [SECRET_URL, "wss://rpc2.example.org/websocket"]  # the follower gets the real URL
    nid = net["id"]

    assert c.get(f"/v1/networks/{nid}", headers=bob["h"]).status_code == 404  # not yours: as if absent
    assert c.patch(f"/v1/networks/{nid}", json={"alerts": {}}, headers=bob["h"]).status_code == 404
    assert c.delete(f"/v1/networks/{nid}", headers=bob["h"]).status_code == 404
    assert c.get("/v1/networks", headers=bob["h"]).json() == []
    assert [n["id"] for n in c.get("/v1/networks", headers=alice["h"]).json()] == [nid]
    assert [n["id"] for n in c.get("/v1/networks", headers=admin["h"]).json()] == [nid]
    assert c.get("/v1/networks").status_code == 401
    assert c.get("/v1/networks/nothex", headers=alice["h"]).status_code == 400

    r = c.patch(f"/v1/networks/{nid}", json={"endpoints": ["ws://127.0.0.1:1/websocket"]}, headers=alice["h"])
    assert r.status_code == 200 and r.json()["endpoints"] == ["ws://127.0.0.1:1/websocket"]
    assert f.stopped and followers.of("cosmoshub").endpoints == ["ws://127.0.0.1:1/websocket"]
    assert c.patch(f"/v1/networks/{nid}", json={"name": "x"}, headers=alice["h"]).status_code == 400
    now_following = followers.of("cosmoshub")
    r = c.patch(f"/v1/networks/{nid}", json={"alerts": {"roundEscalation": 5}}, headers=alice["h"])
    assert r.json()["alerts"]["roundEscalation"] == 5 and r.json()["alerts"]["missedVotes"] is not None
    assert followers.of("cosmoshub") is now_following and not now_following.stopped  # thresholds: no restart

    followers.of("cosmoshub").emit([vote(8), vote(9)])  # written to the run through the real StoreSink
    store = c.app.state.ctx.store  # type: ignore[attr-defined]
    store.flush_events()  # a live sink's rows reach the table within its hold_s (0.1 s); the test does not wait
    assert store.query("SELECT count(*) FROM events e JOIN runs r ON e.run_id = r.id WHERE r.name = ?",
                       ["net:cosmoshub"])[0][0] == 2  # fmt: skip
    assert c.delete(f"/v1/networks/{nid}", headers=alice["h"]).status_code == 200
    assert followers.of("cosmoshub").stopped
    assert store.query("SELECT count(*) FROM runs WHERE name = ?", ["net:cosmoshub"])[0][0] == 0
    assert c.get(f"/v1/networks/{nid}", headers=alice["h"]).status_code == 404


def test_input_rules_and_limits(tmp_path: Path, followers: Followers, caplog: pytest.LogCaptureFixture) -> None:
    with app_client(tmp_path, network_max_endpoints=2, networks_per_user=2) as c:
        u = make_user(c, "root1")
        bad = [
            {"endpoints": ["ftp://x.example"]}, {"endpoints": ["http://"]}, {"endpoints": []},
            {"endpoints": ["http://a", "http://b", "http://c"]}, {"endpoints": ["http://a", "http://a"]},
            {"endpoints": ["http://a b"]}, {"endpoints": ["http://a/#frag"]}, {"name": "bad name"},
            {"name": "-x"}, {"name": "x" * 64}, {"alerts": {"nope": 1}}, {"alerts": {"missedVotes": 0}},
            {"chain": "nochain"}, {"endpoints": ["http://user:pw@x.example:99999"]},
        ]  # fmt: skip
        with caplog.at_level(logging.DEBUG):
            for body in bad:
                r = c.post("/v1/networks", json={"name": "n", "endpoints": ["http://127.0.0.1:1"], **body},
                           headers=u["h"])  # fmt: skip
                assert r.status_code == 400, (body, r.text)
                assert "pw@" not in r.text
        assert "pw@" not in caplog.text
        assert create(c, u, "one").status_code == 201
        assert create(c, u, "one").status_code == 409  # names are unique: the run is net:<name>
        assert create(c, u, "two").status_code == 201
        assert create(c, u, "three").status_code == 409  # two per user here


def test_status_shows_the_follower_redacted(net_client: TestClient, followers: Followers) -> None:
    c = net_client
    u = make_user(c, "root1")
    nid = create(c, u, "n1", endpoints=[SECRET_URL]).json()["id"]
    st = c.get(f"/v1/networks/{nid}", headers=u["h"]).json()["status"]
    assert (st["state"], st["height"], st["round"], st["step"], st["nodeHeight"], st["lag"], st["gaps"]) == (
        "following",
        7,
        1,
        "prevote",
        9,
        2,
        1,
    )
    assert st["counters"] == {"duplicates": 2}
    ep = st["endpoints"][0]
    assert ep["url"] == "https://***@rpc.example.org:443/?apikey=***" and ep["reconnects"] == 4
    assert "s3cret" not in ep["lastError"] and "k3y" not in ep["lastError"]
    followers.of("n1").emit([vote(8)])  # the fake names its source after its first endpoint, as a follower may
    store = c.app.state.ctx.store  # type: ignore[attr-defined]
    labels = [n.label for n in store.nodes(store.get_run("net:n1").id)]
    assert labels == ["https://***@rpc.example.org:443/?apikey=***"]
    assert "status" not in c.get("/v1/networks", headers=u["h"]).json()[0] or \
        c.get("/v1/networks", headers=u["h"]).json()[0]["status"] is None  # fmt: skip


def test_networks_are_followed_again_at_start_up(tmp_path: Path, followers: Followers) -> None:
    with app_client(tmp_path) as c:
        u = make_user(c, "root1")
        create(c, u, "n1")
    assert followers.of("n1").stopped  # shutdown stopped it
    with app_client(tmp_path) as c:
        assert len(followers.made) == 2 and not followers.made[1].stopped
    with app_client(tmp_path, follow_networks=False) as c:
        assert len(followers.made) == 2
        st = c.get("/v1/networks", headers=u["h"]).json()
        assert [n["name"] for n in st] == ["n1"]


def feed_url(nid: str, query: str = "") -> str:
    return f"/v1/networks/{nid}/feed{query}"


def test_feed_auth_filters_and_rows(net_client: TestClient, followers: Followers) -> None:
    c = net_client
    admin = make_user(c, "root1")
    bob = make_user(c, "bob", admin["token"])
    nid = create(c, admin, "n1").json()["id"]
    for url, headers in [(feed_url(nid), {}), (feed_url(nid), bob["h"]), (feed_url("0" * 24), admin["h"]),
                         (feed_url(nid, "?kinds=nope"), admin["h"]), (feed_url(nid, "?from_height=x"), admin["h"]),
                         (feed_url(nid, "?validator=zz"), admin["h"])]:  # fmt: skip
        with pytest.raises(WebSocketDisconnect) as refused, c.websocket_connect(url, headers=headers):
            pass
        assert refused.value.code == 1008, url
    f = followers.of("n1")
    with c.websocket_connect(feed_url(nid, f"?kinds=vote_added&validator={'ab' * 20}&from_height=9"),
                             headers=admin["h"]) as ws:  # fmt: skip
        c.portal.call(f.emit, [vote(8), vote(9), vote(9, "CD" * 20), {"ts": 1, "kind": "step", "height": 10}])
        c.portal.call(f.emit, [vote(10)])
        assert [r["height"] for r in orjson.loads(ws.receive_text())] == [9]
        assert [r["height"] for r in orjson.loads(ws.receive_text())] == [10]
    # a browser: the token as a subprotocol beside bftscope.feed
    with c.websocket_connect(feed_url(nid), subprotocols=["bftscope.feed", f"bearer.{admin['token']}"]) as ws:
        assert ws.accepted_subprotocol == "bftscope.feed"
        c.portal.call(f.emit, [vote(11)])
        assert orjson.loads(ws.receive_text())[0]["height"] == 11


def test_refused_subprotocol_token(net_client: TestClient) -> None:
    c = net_client
    admin = make_user(c, "root1")
    bob = make_user(c, "bob", admin["token"])
    nid = create(c, admin, "n1").json()["id"]
    with pytest.raises(WebSocketDisconnect) as refused, \
            c.websocket_connect(feed_url(nid), subprotocols=["bftscope.feed", f"bearer.{bob['token']}"]):  # fmt: skip
        pass
    assert refused.value.code == 1008


def test_a_slow_feed_client_is_disconnected_with_a_reason(net_client: TestClient, followers: Followers) -> None:
    c = net_client
    u = make_user(c, "root1")
    nid = create(c, u, "n1").json()["id"]
    f = followers.of("n1")
    with c.websocket_connect(feed_url(nid), headers=u["h"]) as ws:
        # ten batches in one turn of the event loop: the sender cannot drain them, the queue (4) overflows
        c.portal.call(lambda: [f.emit([vote(h)]) for h in range(10)])
        c.app.state.ctx.store.flush_events()  # type: ignore[attr-defined]  # written within hold_s; not waited for
        with pytest.raises(WebSocketDisconnect) as cut:
            while True:
                ws.receive_text()
        assert cut.value.code == 1013 and "too slow" in cut.value.reason
    st = c.get(f"/v1/networks/{nid}", headers=u["h"]).json()["status"]
    assert st["feedOverflows"] == 1 and st["feedSubscribers"] == 0


def test_metrics_per_network_and_alert_gauges(net_client: TestClient, followers: Followers) -> None:
    c = net_client
    u = make_user(c, "root1")
    create(c, u, "n1", alerts={"roundEscalation": 1})
    f = followers.of("n1")
    c.portal.call(f.emit, [vote(7), vote(7, "CD" * 20)])
    c.app.state.ctx.store.flush_events()  # type: ignore[attr-defined]  # written within hold_s; not waited for
    sup = c.app.state.ctx.networks  # type: ignore[attr-defined]
    c.portal.call(sup.tick)
    text = c.get("/metrics").text
    for line in ['bftscope_network_height{network="n1"} 7.0', 'bftscope_network_lag{network="n1"} 2.0',
                 'bftscope_network_store_events{network="n1"} 2.0', 'bftscope_network_reconnects{network="n1"} 4.0',
                 'bftscope_network_gaps{network="n1"} 1.0', 'bftscope_network_store_bytes{network="n1"} ',
                 'bftscope_alert_active{network="n1",rule="round_escalation",subject="7"} 1.0']:  # fmt: skip
        assert line in text, line
    f.height, f.round = 8, 0
    c.portal.call(sup.tick)
    assert "bftscope_alert_active{" not in c.get("/metrics").text  # cleared: the series is gone


def test_deleting_a_user_deletes_their_networks(net_client: TestClient, followers: Followers) -> None:
    c = net_client
    admin = make_user(c, "root1")
    bob = make_user(c, "bob", admin["token"])
    create(c, bob, "bobnet")
    followers.of("bobnet").emit([vote(3)])
    assert c.delete(f"/v1/users/{bob['id']}", headers=admin["h"]).status_code == 200
    assert followers.of("bobnet").stopped
    assert c.get("/v1/networks", headers=admin["h"]).json() == []
    store = c.app.state.ctx.store  # type: ignore[attr-defined]
    assert store.query("SELECT count(*) FROM runs WHERE name = ?", ["net:bobnet"])[0][0] == 0
