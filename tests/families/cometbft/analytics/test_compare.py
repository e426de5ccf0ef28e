"""Comparing a normal simulated run with one whose node0 has the real misconfiguration
(``../shared/data/cometbft/analyzer-example-configs``: flush throttle 200 ms, timeout_commit 2 s,
gossip sleep 400 ms) names node0 first."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from bftscope.cli import app
from bftscope.config import Settings
from bftscope.families.cometbft.analytics.compare import compare_runs
from bftscope.families.cometbft.synthetic.network import build_config, simulate
from bftscope.ingest.pipeline import ingest
from bftscope.store import DuckDBStore


def test_misconfigured_node0_is_named(tmp_path: Path) -> None:
    truths = {}
    for name, slow in (("normal", None), ("node0-slow", 0)):
        cfg = build_config(nodes=4, heights=25, seed=5, base_latency_ms=40.0, spread_ms=60.0, slow_node=slow,
                           silent=[], drop_rate=0.0, escalations=[], target_bytes=None)  # fmt: skip
        truths[name] = simulate(cfg, tmp_path / name)
    node0 = truths["node0-slow"].nodes[0]
    assert node0["misconfigured"] and node0["flush_throttle_ms"] == 200.0 and node0["timeout_commit_ms"] == 2000.0
    settings = Settings(data_dir=tmp_path / "store")
    store = DuckDBStore.open(settings.store_path, settings)
    for name in truths:
        ingest(store, name, [tmp_path / name], settings)
    label = next(n.label for n in store.nodes(store.get_run("node0-slow").id) if n.p2p_id == node0["node_id"])
    result = compare_runs(store, store.get_run("normal").id, store.get_run("node0-slow").id)
    assert result["verdicts"], result["changes"]
    assert result["verdicts"][0].startswith(f"{label}'s median outbound")
    top = result["changes"][0]
    assert top["subject"] == label and top["b"] > 2 * top["a"]
    # no other node's outbound latency is the top change
    others = [c for c in result["changes"] if c["measure"] == "vote_out_ms" and c["subject"] != label]
    assert all(abs(c["ratio"]) < abs(top["ratio"]) / 2 for c in others)
    store.close()
    out = CliRunner().invoke(app, ["compare", "normal", "node0-slow", "--data-dir", str(tmp_path / "store")])
    assert out.exit_code == 0 and f"{label}'s median outbound" in out.stdout
