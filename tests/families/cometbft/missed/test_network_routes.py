"""``/v1/networks/{id}/missed`` on the real v0.34 testnet stored as a network's run: the library's rows, the
owner check, an empty answer before the follower wrote anything, bad input refused."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from bftscope.api.app import create_app
from bftscope.config import Settings
from bftscope.families.cometbft.missed.votes import missed
from bftscope.ingest.pipeline import ingest
from tests.api.conftest import make_user
from tests.conftest import require_data

DROPPED = "032DF8EFA3F8F921BFCAD4E72AC251A5760F3E4C"


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    # the server does not follow here: the network's run is filled from the recording instead
    with TestClient(create_app(Settings(data_dir=tmp_path / "data", rate_limit_enabled=False,
                                        follow_networks=False))) as c:  # fmt: skip
        yield c


def test_a_networks_missed_votes(client: TestClient) -> None:
    testnet = require_data("cometbft/tendermint-v0.34-4node-wal")
    alice = make_user(client, "alice")
    bob = make_user(client, "bob", alice["token"])
    h = alice["h"]
    nid = client.post("/v1/networks", json={"name": "v034", "endpoints": ["ws://127.0.0.1:9/websocket"]},
                      headers=h).json()["id"]  # fmt: skip
    url = f"/v1/networks/{nid}/missed"
    empty: dict[str, Any] = client.get(url, headers=h).json()
    assert empty == {"data": [], "offset": 0, "limit": 1000, "next_offset": None}  # nothing written yet
    store = client.app.state.ctx.store  # type: ignore[attr-defined]
    ingest(store, "net:v034", [testnet], client.app.state.ctx.settings)  # type: ignore[attr-defined]
    rid = store.get_run("net:v034").id
    store.execute("DELETE FROM events WHERE run_id = ? AND msg_type = 'vote' AND validator = ?", [rid, DROPPED])
    want = missed(store, rid)
    got, offset = [], 0
    while offset is not None:
        page = client.get(f"{url}?limit=150&offset={offset}", headers=h).json()
        got += page["data"]
        offset = page["next_offset"]
    assert got == want and len(got) == 77 * 4 * 2
    absent = client.get(f"{url}?status=absent", headers=h).json()["data"]
    assert absent and {r["validator"] for r in absent} == {DROPPED} and all(r["solo"] for r in absent)
    summary = client.get(f"{url}/summary", headers=h).json()
    by = {v["validator"]: v for v in summary["validators"]}
    assert by[DROPPED]["uptime"]["uptime"] == 0.0 and by[DROPPED]["longest_streak"]["length"] == 49
    assert client.get(url, headers=bob["h"]).status_code == 404  # another user's network
    assert client.get(f"{url}/summary", headers=bob["h"]).status_code == 404
    for bad in ("status=gone", "validator=xyz", "from=9&to=3", "limit=0"):
        assert client.get(f"{url}?{bad}", headers=h).status_code == 400, bad
