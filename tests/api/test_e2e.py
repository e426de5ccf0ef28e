"""End to end over HTTP on the real 4-validator v0.34 testnet: a user uploads the node homes as archives, the
simulation is processed, every event is paged exactly once, every metric is read back and agrees with the
library, reprocessing adds nothing, and deleting removes files and data."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.testclient import TestClient

from bftscope.config import Settings
from bftscope.families.cometbft.analytics import analyzer
from tests.api.conftest import make_user, tar_gz, wait_processed, zip_of
from tests.conftest import require_data

METRICS = ("latency/votes", "latency/pairwise", "latency/timeseries", "latency/stats", "messages/success_rate",
           "latency/end_to_end", "vote/statistics", "network/latency/stats", "network/latency/node-stats",
           "network/latency/overview")  # fmt: skip
ANALYTICS = ("summary", "analytics/vote-matrix", "analytics/links", "analytics/clock-skew",
             "analytics/clock-offsets", "analytics/timeline", "analytics/participation", "analytics/proposers",
             "analytics/node-ranking", "analytics/topology")  # fmt: skip


def _all_events(client: TestClient, sid: str, h: dict[str, str], limit: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    cursor = None
    while True:
        q = f"/v1/simulations/{sid}/events?limit={limit}" + (f"&cursor={cursor}" if cursor else "")
        page = client.get(q, headers=h).json()
        out += page["data"]
        if not page["pagination"]["hasNext"]:
            return out
        cursor = page["pagination"]["nextCursor"]


def test_upload_process_page_and_read_every_metric(client: TestClient, api_settings: Settings) -> None:
    testnet = require_data("cometbft/tendermint-v0.34-4node-wal")
    alice = make_user(client, "alice")
    h, uid = alice["h"], alice["id"]
    pid = client.post(f"/v1/users/{uid}/projects", json={"name": "v0.34"}, headers=h).json()["id"]
    # two node homes as .tar.gz, two as .zip
    files = [("logfiles", (f"node{i}.tar.gz", tar_gz(testnet / f"node{i}", f"node{i}"), "application/gzip"))
             for i in (0, 1)] + [("logfiles", (f"node{i}.zip", zip_of(testnet / f"node{i}", f"node{i}"),
                                                "application/zip")) for i in (2, 3)]  # fmt: skip
    r = client.post(f"/v1/users/{uid}/projects/{pid}/simulations", data={"name": "wal", "description": "real"},
                    files=files, headers=h)  # fmt: skip
    assert r.status_code == 201, r.text
    sid = r.json()["id"]
    assert r.json()["status"] == "processing" and len(r.json()["logFiles"]) == 4
    sim = wait_processed(client, sid, h)
    assert sim["status"] == "processed", sim
    result = sim["processingResult"]
    assert result["processedFiles"] == result["totalFiles"] == 4 and result["processingTime"] > 0

    summary = client.get(f"/v1/simulations/{sid}/summary", headers=h).json()
    # as the CLI ingest of the same folder (tests/test_cli.py): 11,668 parsed events (608 of them derived from
    # the WALs: block_complete, timeout_scheduled) + one node_restart per node (height 50)
    assert summary["events"] == 11_668 + 4 == 11_672 and len(summary["nodes"]) == 4
    assert {n["label"] for n in summary["nodes"]} == {"node0", "node1", "node2", "node3"}

    # every event exactly once, in (timestamp, id) order, with a page size that splits equal timestamps
    events = _all_events(client, sid, h, limit=997)
    ids = [e["id"] for e in events]
    exchanges = [e for e in events if e["kind"] == "delivery"]  # the confirmed p2p exchanges, interleaved
    assert len(ids) == len(set(ids)) == summary["events"] + len(exchanges) and len(exchanges) > 2000
    keys = [(e["timestamp"], e["id"]) for e in events]
    assert keys == sorted(keys)
    page = client.get(f"/v1/simulations/{sid}/events?limit=100&includeTotalCount=true", headers=h).json()
    assert page["pagination"]["totalCount"] == len(events) and page["pagination"]["hasPrevious"] is False
    only = client.get(f"/v1/simulations/{sid}/events?limit=50000&kind=delivery&includeTotalCount=true",
                      headers=h).json()  # fmt: skip
    assert only["data"] == exchanges and only["pagination"]["totalCount"] == len(exchanges)
    assert {e["eventType"] for e in exchanges} == {"p2pVote", "p2pProposal", "p2pBlockPart"}
    nxt = client.get(f"/v1/simulations/{sid}/events?limit=100&cursor={page['pagination']['nextCursor']}",
                     headers=h).json()  # fmt: skip
    back = client.get(f"/v1/simulations/{sid}/events?limit=100&before={nxt['pagination']['previousCursor']}",
                      headers=h).json()  # fmt: skip
    assert [e["id"] for e in back["data"]] == [e["id"] for e in page["data"]]  # the page just before
    seg3 = client.get(f"/v1/simulations/{sid}/events?limit=100&segment=3", headers=h).json()
    assert [e["id"] for e in seg3["data"]] == ids[200:300]
    steps = client.get(f"/v1/simulations/{sid}/events?limit=50000&kind=step&node=node1&height=5", headers=h).json()
    assert steps["data"] and all(e["kind"] == "step" and e["node"] == "node1" and e["height"] == 5
                                 for e in steps["data"])  # fmt: skip
    assert all(e["eventType"].startswith("entering") or e["eventType"] == "proposeStep" for e in steps["data"])
    assert client.get(f"/v1/simulations/{sid}/events?cursor=yesterday", headers=h).status_code == 400
    assert client.get(f"/v1/simulations/{sid}/events?kind=nope", headers=h).status_code == 400

    store = client.app.state.ctx.store  # type: ignore[attr-defined]
    rid = store.get_run(f"sim-{sid}").id
    for path in METRICS:
        r = client.get(f"/v1/simulations/{sid}/metrics/{path}", headers=h)
        assert r.status_code == 200 and r.json(), path
    assert client.get(f"/v1/simulations/{sid}/metrics/latency/pairwise", headers=h).json() == \
        analyzer.round_ms(analyzer.pairwise_latency(store, rid))  # fmt: skip
    votes = client.get(f"/v1/simulations/{sid}/metrics/latency/votes?threshold=p50&perPage=5&page=2",
                       headers=h).json()  # fmt: skip
    assert votes == analyzer.round_ms(analyzer.vote_latencies(store, rid, page=2, per_page=5, threshold="p50"))
    # a large answer goes out gzip-compressed to clients that accept it, and decodes to the same JSON
    url = f"/v1/simulations/{sid}/metrics/latency/timeseries"
    zipped = client.get(url, headers={**h, "Accept-Encoding": "gzip"})
    plain = client.get(url, headers={**h, "Accept-Encoding": "identity"})
    assert zipped.headers["content-encoding"] == "gzip" and "content-encoding" not in plain.headers
    assert zipped.json() == plain.json() and len(zipped.content) > 64 * 1024
    for path in ANALYTICS:
        assert client.get(f"/v1/simulations/{sid}/{path}", headers=h).status_code == 200, path
    skew = client.get(f"/v1/simulations/{sid}/analytics/clock-skew", headers=h).json()["data"]
    assert len(skew) == 6 and all(r["interval_ms"][0] <= 0 <= r["interval_ms"][1] for r in skew)  # one host
    assert all(r["status"] in ("estimated", "not determinable") and "b_ahead_of_a_ms" in r for r in skew)
    offsets = client.get(f"/v1/simulations/{sid}/analytics/clock-offsets", headers=h).json()["data"]
    assert [o["node"] for o in offsets] == ["node0", "node1", "node2", "node3"]
    detail = client.get(f"/v1/simulations/{sid}/analytics/timeline/5", headers=h).json()["data"]
    assert [d["node"] for d in detail] == ["node0", "node1", "node2", "node3"]
    part = client.get(f"/v1/simulations/{sid}/analytics/participation", headers=h).json()
    assert part["missed"] == [] and len(part["validators"]) == 4
    topo = client.get(f"/v1/simulations/{sid}/analytics/topology", headers=h).json()
    assert topo["shape"] == "full mesh" and len(topo["edges"]) == 6  # every node received from the three others

    # a window narrows the answer; a bad one is refused
    first, last = summary["firstTimestamp"], summary["lastTimestamp"]
    whole = client.get(f"/v1/simulations/{sid}/metrics/latency/pairwise", headers=h).json()
    part_ = client.get(f"/v1/simulations/{sid}/metrics/latency/pairwise?from={first}&to={first[:17]}30Z",
                       headers=h).json()  # fmt: skip
    assert 0 < sum(x["count"] for x in part_) < sum(x["count"] for x in whole)
    assert client.get(f"/v1/simulations/{sid}/metrics/latency/pairwise?from={last}&to={first}",
                      headers=h).status_code == 400  # fmt: skip
    assert client.get(f"/v1/simulations/{sid}/metrics/latency/pairwise?from=soon", headers=h).json()["error"] == \
        "invalid time range"  # fmt: skip

    # reprocessing never duplicates
    assert client.post(f"/v1/simulations/{sid}/process", headers=h).status_code == 202
    assert wait_processed(client, sid, h)["status"] == "processed"
    assert client.get(f"/v1/simulations/{sid}/summary", headers=h).json()["events"] == summary["events"]

    # deleting removes the files and the data
    folder = api_settings.data_dir / "uploads" / sid
    assert folder.is_dir()
    assert client.delete(f"/v1/simulations/{sid}", headers=h).status_code == 200
    assert not folder.exists()
    assert store.query("SELECT count(*) FROM runs WHERE name = ?", [f"sim-{sid}"])[0][0] == 0
    assert store.query("SELECT count(*) FROM events WHERE run_id = ?", [rid])[0][0] == 0


def test_a_failed_file_fails_the_simulation_and_keeps_the_rest(client: TestClient) -> None:
    testnet = require_data("cometbft/tendermint-v0.34-4node-wal")
    alice = make_user(client, "alice")
    h, uid = alice["h"], alice["id"]
    pid = client.post(f"/v1/users/{uid}/projects", json={"name": "p"}, headers=h).json()["id"]
    files = [("logfiles", ("node0.tar.gz", tar_gz(testnet / "node0", "node0"), "application/gzip")),
             ("logfiles", ("broken.tar.gz", b"\x1f\x8b\x08\x00garbage", "application/gzip"))]  # fmt: skip
    sid = client.post(f"/v1/users/{uid}/projects/{pid}/simulations", data={"name": "s"}, files=files,
                      headers=h).json()["id"]  # fmt: skip
    sim = wait_processed(client, sid, h)
    assert sim["status"] == "failed" and "broken.tar.gz" in sim["processingResult"]["errorMessage"]
    assert client.get(f"/v1/simulations/{sid}/summary", headers=h).json()["events"] > 2000  # node0 was kept


@pytest.mark.parametrize("path", METRICS)
def test_unprocessed_simulation_answers_empty(client: TestClient, path: str) -> None:
    alice = make_user(client, "alice")
    h, uid = alice["h"], alice["id"]
    pid = client.post(f"/v1/users/{uid}/projects", json={"name": "p"}, headers=h).json()["id"]
    sid = client.post(f"/v1/users/{uid}/projects/{pid}/simulations", json={"name": "s"}, headers=h).json()["id"]
    r = client.get(f"/v1/simulations/{sid}/metrics/{path}", headers=h)
    assert r.status_code == 200
    body = r.json()
    assert body is not None and body != {} and not (isinstance(body, dict) and body.get("data"))
