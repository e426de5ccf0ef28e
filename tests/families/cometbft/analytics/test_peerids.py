"""WAL-only networks: node homes with only ``config/`` and ``data/`` (no node_key.json, no logs) get every
node's p2p id, and with it the same one-hop answers as the same run ingested with its logs."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bftscope.config import Settings
from bftscope.families.cometbft.analytics import peerids
from bftscope.families.cometbft.analytics.report import build_report
from bftscope.families.cometbft.analytics.rollups import answer
from bftscope.families.cometbft.analytics.summary import run_summary
from bftscope.families.cometbft.parse.home import home_network
from bftscope.ingest.pipeline import IngestResult, ingest
from bftscope.store import DuckDBStore
from tests.conftest import require_data

TESTNET = "cometbft/tendermint-v0.34-4node-wal"
# The ids the nodes' own logs state ("Started node … DefaultNodeID"): the truth the inference must find.
LOGGED_IDS = {
    "node0": "7e80d23025b485d2d00306dc77e466de414339c8",
    "node1": "0ec8b50bd750952aace1a11af49eea79344af47f",
    "node2": "ceae5c4eab7da9c1e0704287cefacaf487d2441a",
    "node3": "5bd6ecea9c240fa2ce031ac08fc9359ee6d47242",
}
Runs = tuple[DuckDBStore, dict[str, int], IngestResult]
ONE_HOP = ("links", "clock_skew", "network_pair_stats", "network_node_stats", "network_overview", "success_rate",
           "pairwise", "topology")  # fmt: skip


def wal_only_copy(src: Path, dst: Path, edit: Callable[[Path], None] | None = None) -> Path:
    """Each node home of ``src`` with only its ``config/`` and ``data/`` (what an operator hands over)."""
    for home in sorted(p for p in src.iterdir() if p.is_dir()):
        for part in ("config", "data"):
            shutil.copytree(home / part, dst / home.name / part)
    for p in dst.rglob("*"):
        p.chmod(0o755 if p.is_dir() else 0o644)  # the shared data is read-only
    if edit is not None:
        edit(dst)
    return dst


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runs]:
    """One store holding the real testnet twice: ``logged`` (everything) and ``wal_only`` (config/ and data/)."""
    src = require_data(TESTNET)
    tmp = tmp_path_factory.mktemp("walonly")
    settings = Settings(data_dir=tmp / "store", query_timeout_s=30)
    store = DuckDBStore.open(settings.store_path, settings)
    logged = ingest(store, "logged", [src], settings, workers=1)
    wal_only = ingest(store, "wal_only", [wal_only_copy(src, tmp / "homes")], settings, workers=1)
    yield store, {"logged": logged.run_id, "wal_only": wal_only.run_id}, wal_only
    store.close()


def test_wal_only_homes_have_no_stated_ids(tmp_path: Path) -> None:
    homes = wal_only_copy(require_data(TESTNET), tmp_path)
    assert not list(homes.rglob("node_key.json")) and not list(homes.rglob("*.log"))


def test_every_node_id_is_found_and_says_where_from(runs: Runs) -> None:
    store, ids, result = runs
    nodes = {n.label: n.p2p_id for n in store.nodes(ids["wal_only"])}
    assert nodes == LOGGED_IDS
    assert {n.label: n.p2p_id for n in store.nodes(ids["logged"])} == LOGGED_IDS
    # the ingest result and the summary say where each id came from; here both WAL rules agree, and the
    # configs (every node lists all four ids, itself included) name no one
    by_label = {i["label"]: i for i in result.identities}
    summary = {n["label"]: n for n in run_summary(store, "wal_only")["nodes"]}
    for label in LOGGED_IDS:
        assert by_label[label]["sources"] == [peerids.WAL_FASTEST, peerids.WAL_ABSENT]
        assert by_label[label]["conflicts"] == []
        assert summary[label]["p2p_id_sources"] == by_label[label]["sources"]
        assert summary[label]["identity_conflicts"] == []
    # with the logs, the id is the log's, and the WAL confirms it (the per-vote scan is spared when ids are stated)
    logged = {n["label"]: n for n in run_summary(store, "logged")["nodes"]}
    for label in LOGGED_IDS:
        assert logged[label]["p2p_id_sources"] == ["log line 'Started node'", peerids.WAL_ABSENT]


def _canonical(value: Any) -> Any:
    """An answer with lists of rows sorted, so that two runs' answers compare whatever their row order, and
    floats to the nanosecond (a mean's last bits depend on the order rows are summed in)."""
    if isinstance(value, float):
        return round(value, 6)
    if isinstance(value, list):
        return sorted((_canonical(v) for v in value), key=lambda v: json.dumps(v, sort_keys=True))
    if isinstance(value, dict):
        return {k: _canonical(v) for k, v in value.items()}
    return value


@pytest.mark.parametrize("metric", ONE_HOP)
def test_one_hop_answers_equal_the_logged_run(runs: Runs, metric: str) -> None:
    store, ids, _ = runs
    wal_only, logged = answer(store, ids["wal_only"], metric), answer(store, ids["logged"], metric)
    assert wal_only, f"{metric} is empty on the WAL-only run"
    assert _canonical(wal_only) == _canonical(logged)


def test_one_hop_deliveries_exist_for_every_directed_pair(runs: Runs) -> None:
    store, ids, _ = runs
    rows = store.query(
        "SELECT sender, receiver, count(*), min(latency_ns) FROM deliveries WHERE run_id = ? GROUP BY ALL",
        [ids["wal_only"]],
    )
    assert len(rows) == 12  # 4 nodes, every directed pair
    assert all(n > 150 and lat > 0 for _, _, n, lat in rows)


def _drop_from_peers(home: Path, peer_id: str) -> None:
    conf = home / "config" / "config.toml"
    text = conf.read_text()
    line = next(x for x in text.splitlines() if x.startswith("persistent_peers"))
    entries = [e for e in line.split('"')[1].split(",") if not e.startswith(peer_id)]
    conf.write_text(text.replace(line, f'persistent_peers = "{",".join(entries)}"'))


def test_config_against_wal_disagreement_is_reported(tmp_path: Path, settings: Settings) -> None:
    """node1's config, hand-edited, leaves out node2's id: by the config rule node1 *is* node2's id,
    while its WAL says otherwise. The disagreement is reported in the ingest result and the summary."""
    homes = wal_only_copy(require_data(TESTNET), tmp_path / "homes",
                          lambda d: _drop_from_peers(d / "node1", LOGGED_IDS["node2"]))  # fmt: skip
    store = DuckDBStore.open(settings.store_path, settings)
    result = ingest(store, "edited", [homes], settings, workers=1)
    node1 = next(i for i in result.identities if i["label"] == "node1")
    assert node1["p2p_id"] == LOGGED_IDS["node1"]  # the WAL's observation is kept over the config's convention
    (conflict,) = node1["conflicts"]
    assert f"{peerids.CONFIG_LISTS} says {LOGGED_IDS['node2']}" in conflict
    assert f"{peerids.WAL_FASTEST} says {LOGGED_IDS['node1']}" in conflict
    summary = {n["label"]: n for n in run_summary(store, "edited")["nodes"]}
    assert summary["node1"]["identity_conflicts"] == [conflict]
    report = build_report(store, result.run_id)  # `bftscope report` says it too
    assert next(i for i in report["identities"] if i["label"] == "node1")["conflicts"] == [conflict]
    counts = answer(store, result.run_id, "run_counts")  # and the API's summary
    assert next(n for n in counts["nodes"] if n["label"] == "node1")["identityConflicts"] == [conflict]
    assert all(not summary[x]["identity_conflicts"] for x in ("node0", "node2", "node3"))
    store.close()


def test_config_peer_lists_name_a_node_that_leaves_itself_out(tmp_path: Path) -> None:
    """The usual layout (each node lists the others): the one id missing from a node's own list is its own."""
    src = require_data(TESTNET)

    def edit(d: Path) -> None:
        for label, pid in LOGGED_IDS.items():
            _drop_from_peers(d / label, pid)

    homes = wal_only_copy(src, tmp_path / "homes", edit)
    listed = [p for p, _ in home_network(homes / "node0")["peers"]]
    assert listed == [LOGGED_IDS[x] for x in ("node1", "node2", "node3")]
    settings = Settings(data_dir=tmp_path / "store", query_timeout_s=30)
    store = DuckDBStore.open(settings.store_path, settings)
    result = ingest(store, "lists", [homes], settings, workers=1)
    for i in result.identities:
        assert i["p2p_id"] == LOGGED_IDS[i["label"]]
        assert i["sources"] == [peerids.WAL_FASTEST, peerids.WAL_ABSENT, peerids.CONFIG_LISTS]
    store.close()


def _add_gentxs(home: Path, gentxs: dict[str, str]) -> None:
    """Give a copied genesis.json the gentxs a Cosmos SDK chain has: validator name → memo, with that validator's
    real consensus key (protobuf-JSON layout of SDK ≥ 0.40)."""
    path = home / "config" / "genesis.json"
    genesis = json.loads(path.read_text())
    keys = {v["name"]: v["pub_key"]["value"] for v in genesis["validators"]}
    genesis["app_state"] = {"genutil": {"gen_txs": [
        {"body": {"messages": [{"@type": "/cosmos.staking.v1beta1.MsgCreateValidator", "description": {"moniker": name},
                                "pubkey": {"@type": "/cosmos.crypto.ed25519.PubKey", "key": keys[name]}}],
                  "memo": memo}}
        for name, memo in gentxs.items()
    ]}}  # fmt: skip
    path.write_text(json.dumps(genesis))


def test_genesis_gentx_memos_name_ids_and_a_wrong_one_is_reported(tmp_path: Path, settings: Settings) -> None:
    """A gentx memo is the validator's own ``<id>@<ip>:<port>``: it names node2's id (agreeing with the WAL);
    a memo giving node3 node0's id disagrees with the WAL, and that is reported, never silently settled."""
    gentxs = {
        "node2": f"{LOGGED_IDS['node2']}@192.167.10.4:26656",
        "node3": f"{LOGGED_IDS['node0']}@192.167.10.5:26656",
    }

    def edit(d: Path) -> None:
        for label in LOGGED_IDS:
            _add_gentxs(d / label, gentxs)

    homes = wal_only_copy(require_data(TESTNET), tmp_path / "homes", edit)
    store = DuckDBStore.open(settings.store_path, settings)
    result = ingest(store, "gentx", [homes], settings, workers=1)
    ids = {i["label"]: i for i in result.identities}
    assert ids["node2"]["sources"] == [peerids.GENTX, peerids.WAL_FASTEST, peerids.WAL_ABSENT]
    assert ids["node2"]["conflicts"] == []
    # node3: the gentx (the strongest inferred source) names node0's id, against node3's own WAL evidence; that
    # id is then claimed for two nodes, so it is left to neither, and both disagreements are reported
    assert ids["node3"]["p2p_id"] is None and ids["node0"]["p2p_id"] is None
    disagree, shared = ids["node3"]["conflicts"]
    assert f"{peerids.GENTX} says {LOGGED_IDS['node0']}" in disagree
    assert f"{peerids.WAL_FASTEST} says {LOGGED_IDS['node3']}" in disagree
    assert shared == f"p2p id {LOGGED_IDS['node0']} is claimed for node3 and for node0; left unknown"
    assert ids["node0"]["conflicts"] == [shared.replace("node3 and for node0", "node0 and for node3")]
    assert ids["node1"]["p2p_id"] == LOGGED_IDS["node1"]  # the others are untouched
    summary = {n["label"]: n for n in run_summary(store, "gentx")["nodes"]}
    assert summary["node3"]["identity_conflicts"] == [disagree, shared] and summary["node0"]["p2p_id"] is None
    store.close()


def test_resolving_again_writes_nothing_when_nothing_changed(runs: Runs) -> None:
    """A live run resolves ids at every update (bench/live_follow_bench.py: ~6 UPDATEs per update, a seventh of
    the writer's statement time with 20 networks); what is already stored is not written again, and the
    answer is the same."""
    store, ids, _ = runs
    first = peerids.resolve(store, ids["wal_only"])
    nodes = store.query("SELECT node, p2p_id, meta FROM nodes WHERE run_id = ? ORDER BY node", [ids["wal_only"]])
    written: list[str] = []
    real = store.execute

    def spy(sql: str, params: Any = None) -> Any:
        written.append(sql)
        return real(sql, params)

    store.execute = spy  # type: ignore[method-assign]
    try:
        again = peerids.resolve(store, ids["wal_only"])
    finally:
        del store.execute
    assert again == first and [s for s in written if s.lstrip().upper().startswith("UPDATE")] == []
    assert store.query("SELECT node, p2p_id, meta FROM nodes WHERE run_id = ? ORDER BY node",
                       [ids["wal_only"]]) == nodes  # fmt: skip
