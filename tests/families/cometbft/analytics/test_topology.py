"""Topology: direct links from what nodes received, the shape in words, and one hop vs relayed in the vote
matrix — on the real v0.34 testnet (WAL-only copies of its node homes) and on every shape the words name."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from bftscope.cli import app
from bftscope.config import Settings
from bftscope.families.cometbft.analytics.report_html import write_html
from bftscope.families.cometbft.analytics.rollups import answer
from bftscope.families.cometbft.analytics.topology import OBSERVED, describe, hops, mark_paths
from bftscope.ingest.pipeline import ingest
from bftscope.store import DuckDBStore
from tests.conftest import require_data
from tests.families.cometbft.analytics.test_peerids import LOGGED_IDS, TESTNET, wal_only_copy

LABELS = {0: "node0", 1: "node1", 2: "node2", 3: "node3"}


def test_real_testnet_is_a_full_mesh_in_every_report(tmp_path: Path) -> None:
    """Every node of the real testnet received from each of the other three: a full mesh, so every
    signer → receiver pair of the vote matrix is one hop (its ~210–230 ms p95s are gossip rounds, not relays)."""
    homes = wal_only_copy(require_data(TESTNET), tmp_path / "homes")
    d = str(tmp_path / "store")
    runner = CliRunner()
    assert runner.invoke(app, ["ingest", str(homes), "--run", "w", "--data-dir", d, "--json"]).exit_code == 0
    result = runner.invoke(app, ["report", "w", "--data-dir", d, "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    topo = report["topology"]
    pairs = [["node0", "node1"], ["node0", "node2"], ["node0", "node3"], ["node1", "node2"], ["node1", "node3"],
             ["node2", "node3"]]  # fmt: skip
    assert topo["edges"] == pairs and topo["source"] == OBSERVED and topo["shape"] == "full mesh"
    assert topo["outside_peers"] == 0 and topo["unidentified_nodes"] == []
    matrix = report["vote_matrix"]
    assert len(matrix) == 12 and {(r["hops"], r["path"]) for r in matrix} == {(1, "one hop")}
    text = runner.invoke(app, ["report", "w", "--data-dir", d]).stdout
    assert "Topology: full mesh: every node is directly connected to every other (6 links)" in " ".join(text.split())
    write_html("w", report, [], tmp_path / "report.html")  # the page of `report --plots`, without drawing the plots
    page = (tmp_path / "report.html").read_text()
    assert "Topology: full mesh" in page and "one hop" in page


def test_two_of_four_homes_one_link_and_the_rest_outside(tmp_path: Path, settings: Settings) -> None:
    """Only node0 and node1 handed over: both ids are still found (each node's WAL names the other three, the
    configs name all four), they share one link, and the two peers outside the run are counted, not drawn."""
    src = require_data(TESTNET)
    homes = wal_only_copy(src, tmp_path / "all")
    store = DuckDBStore.open(settings.store_path, settings)
    result = ingest(store, "two", [homes / "node0", homes / "node1"], settings, workers=1)
    assert {i["label"]: i["p2p_id"] for i in result.identities} == {k: LOGGED_IDS[k] for k in ("node0", "node1")}
    topo = answer(store, result.run_id, "topology")
    assert topo["edges"] == [["node0", "node1"]] and topo["outside_peers"] == 2
    store.close()


def test_each_shape_is_named_in_words() -> None:
    star = {(0, 1), (0, 2), (0, 3)}
    assert describe(LABELS, star) == ("star", "star: node0 relays for node1, node2, node3")
    assert describe(LABELS, {(0, 1), (1, 2), (2, 3)}) == ("line", "line: node0 – node1 – node2 – node3")
    assert describe(LABELS, {(0, 1), (1, 2), (2, 3), (0, 3)}) == ("ring", "ring: node0 – node1 – node2 – node3 – node0")
    assert describe(LABELS, {(0, 1), (2, 3)})[0] == "split"
    shape, words = describe(LABELS, star | {(1, 2)})
    assert shape == "partial mesh" and words.endswith("not directly connected: node1–node3 (via node0); "
                                                      "node2–node3 (via node0)")  # fmt: skip
    assert describe(LABELS, set())[0] == "unknown"


def test_vote_matrix_marks_relayed_pairs() -> None:
    star = {(0, 1), (0, 2), (0, 3)}
    dist = hops(sorted(LABELS), star)
    assert dist[(1, 2)] == dist[(2, 1)] == 2 and dist[(0, 3)] == 1
    topo = {"pairs": [{"a": LABELS[a], "b": LABELS[b], "hops": dist[(a, b)]} for a, b in [(0, 1), (1, 2)]]}
    rows = mark_paths([{"signer": "node1", "receiver": "node0"}, {"signer": "node2", "receiver": "node1"},
                       {"signer": "node9", "receiver": "node1"}], topo)  # fmt: skip
    assert [(r["hops"], r["path"]) for r in rows] == [(1, "one hop"), (2, "relayed (2 hops)"), (None, "unknown")]
