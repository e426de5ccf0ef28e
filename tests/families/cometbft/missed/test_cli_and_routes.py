"""``bftscope missed`` and ``/v1/simulations/{id}/analytics/missed`` on the real v0.34 testnet: the rows the
library gives, filters, pages, owner checks and clear refusals of bad input."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient
from typer.testing import CliRunner

from bftscope.api.app import create_app
from bftscope.cli import app
from bftscope.config import Settings
from bftscope.families.cometbft.missed.votes import missed
from tests.api.conftest import make_user, tar_gz, wait_processed

NODE0 = "5917B48A13EFF68A47E9C309518DEB3E648749EE"


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(data_dir=tmp_path / "data", rate_limit_enabled=False))) as c:
        yield c


def test_the_command(wal_testnet: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    d = str(tmp_path / "store")
    assert runner.invoke(app, ["ingest", str(wal_testnet), "--run", "v034", "--data-dir", d]).exit_code == 0
    res = runner.invoke(app, ["missed", "v034", "--data-dir", d, "--json", "--from", "5", "--to", "6"])
    rows = json.loads(res.stdout)
    assert res.exit_code == 0 and len(rows) == 2 * 4 * 2
    assert {r["height"] for r in rows} == {5, 6} and {r["status"] for r in rows} == {"voted"}
    assert {"height", "round", "validator", "type", "status"} <= set(rows[0])
    res = runner.invoke(app, ["missed", "v034", "--data-dir", d, "--json", "--status", "absent"])
    assert res.exit_code == 0 and json.loads(res.stdout) == []
    res = runner.invoke(app, ["missed", "v034", "--data-dir", d, "--validator", NODE0.lower()])
    assert res.exit_code == 0 and "Votes per validator" in res.stdout and "node0" in res.stdout
    assert "node1" not in res.stdout and "no late / nil / absent / unknown votes" in res.stdout
    res = runner.invoke(app, ["missed", "v034", "--data-dir", d, "--status", "gone"])
    assert res.exit_code == 1 and "status 'gone'" in res.stderr
    res = runner.invoke(app, ["missed", "nope", "--data-dir", d])
    assert res.exit_code == 1 and "nope" in res.stderr


def test_the_routes(client: TestClient) -> None:
    from tests.conftest import require_data

    testnet = require_data("cometbft/tendermint-v0.34-4node-wal")
    alice = make_user(client, "alice")  # the first user is the admin
    bob = make_user(client, "bob", alice["token"])
    h, uid = alice["h"], alice["id"]
    pid = client.post(f"/v1/users/{uid}/projects", json={"name": "v0.34"}, headers=h).json()["id"]
    files = [("logfiles", (f"node{i}.tar.gz", tar_gz(testnet / f"node{i}", f"node{i}"), "application/gzip"))
             for i in range(4)]  # fmt: skip
    sid = client.post(f"/v1/users/{uid}/projects/{pid}/simulations", data={"name": "wal"}, files=files,
                      headers=h).json()["id"]  # fmt: skip
    assert wait_processed(client, sid, h)["status"] == "processed"
    store = client.app.state.ctx.store  # type: ignore[attr-defined]
    want = missed(store, store.get_run(f"sim-{sid}").id)
    url = f"/v1/simulations/{sid}/analytics/missed"
    got, offset = [], 0
    while offset is not None:  # every row once, a page at a time
        page = client.get(f"{url}?limit=100&offset={offset}", headers=h).json()
        got += page["data"]
        offset = page["next_offset"]
    assert got == want and len(got) == 77 * 4 * 2
    assert {(r["status"], r["power"]) for r in got} == {("voted", 1)}  # the set came from the uploaded genesis.json
    some = client.get(f"{url}?from=10&to=11&validator={NODE0}&status=voted&status=absent", headers=h).json()
    assert [(r["height"], r["type"]) for r in some["data"]] == [(10, "prevote"), (10, "precommit"),
                                                                (11, "prevote"), (11, "precommit")]  # fmt: skip
    summary = client.get(f"{url}/summary?window=10", headers=h).json()
    assert summary["window"] == 10 and len(summary["validators"]) == 4
    assert all(v["uptime"]["uptime"] == 1.0 and v["uptime"]["window"] == 10 for v in summary["validators"])
    assert client.get(url, headers=bob["h"]).status_code == 404  # another user's simulation
    for bad in ("status=gone", "validator=xyz", "from=9&to=3", "limit=0", "limit=100000", "from=-1"):
        r = client.get(f"{url}?{bad}", headers=h)
        assert r.status_code in (400, 422) and "error" in r.json(), bad
