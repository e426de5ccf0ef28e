"""Metrics recover what the simulator injected (ground truth), end to end through files and ingest."""

from __future__ import annotations

from pathlib import Path

import pytest

from bftscope.config import Settings
from bftscope.families.cometbft.analytics import answers, participation, timeline
from bftscope.families.cometbft.synthetic.network import GroundTruth, build_config, simulate
from bftscope.ingest.pipeline import ingest
from bftscope.store import DuckDBStore


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> tuple[DuckDBStore, int, GroundTruth]:
    root = tmp_path_factory.mktemp("sim")
    cfg = build_config(nodes=5, heights=30, seed=11, base_latency_ms=40.0, spread_ms=150.0, slow_node=None,
                       silent=[4], drop_rate=0.0, escalations=[], target_bytes=None, clock_skew_ms=30.0)  # fmt: skip
    truth = simulate(cfg, root / "net")
    settings = Settings(data_dir=root / "store")
    store = DuckDBStore.open(settings.store_path, settings)
    ingest(store, "sim", [root / "net"], settings)
    return store, store.get_run("sim").id, truth


def _index(store: DuckDBStore, rid: int, truth: GroundTruth) -> dict[str, int]:
    by_id = {n["node_id"]: n["index"] for n in truth.nodes}
    return {n.label: by_id[n.p2p_id] for n in store.nodes(rid) if n.p2p_id}


def test_one_hop_latency_within_5_percent_of_the_matrix(simulated: tuple[DuckDBStore, int, GroundTruth]) -> None:
    store, rid, truth = simulated
    idx = _index(store, rid, truth)
    offsets = truth.clock_offset_ms
    links = answers.link_latency(store, rid, by_type=False)
    assert len(links) == 20
    for row in links:
        a, b = idx[row["sender"]], idx[row["receiver"]]
        injected = truth.effective_latency_ms[a][b]
        # the logs measure latency on two clocks: injected delay + (receiver offset − sender offset)
        measured = row["p50_ms"] - (offsets[b] - offsets[a])
        assert abs(measured - injected) <= 0.05 * injected, (a, b, measured, injected)
        assert row["delivery_rate"] == 1.0


def test_skew_corrected_latency_is_the_symmetric_path_delay(simulated: tuple[DuckDBStore, int, GroundTruth]) -> None:
    store, rid, truth = simulated
    idx = _index(store, rid, truth)
    lat = truth.effective_latency_ms
    for row in answers.link_latency(store, rid, by_type=False):
        a, b = idx[row["sender"]], idx[row["receiver"]]
        # NTP-style correction removes the clock offset; what remains is the mean of the two directions
        symmetric = (lat[a][b] + lat[b][a]) / 2
        assert abs(row["corrected_p50_ms"] - symmetric) <= 0.05 * symmetric, (a, b, row, symmetric)


def test_clock_skew_is_recovered(simulated: tuple[DuckDBStore, int, GroundTruth]) -> None:
    store, rid, truth = simulated
    idx = _index(store, rid, truth)
    skew = answers.clock_skew(store, rid)
    assert len(skew) == 10
    for s in skew:
        a, b = idx[s["a"]], idx[s["b"]]
        true_skew = truth.clock_offset_ms[b] - truth.clock_offset_ms[a]
        lat = truth.effective_latency_ms
        asymmetry = (lat[a][b] - lat[b][a]) / 2  # NTP's blind spot: an asymmetric path looks like skew
        assert abs(s["b_ahead_of_a_ms"] - (true_skew + asymmetry)) < 2.0


def test_silent_validator_misses_every_vote(simulated: tuple[DuckDBStore, int, GroundTruth]) -> None:
    store, rid, truth = simulated
    silent = truth.nodes[4]["validator_address"]
    part = participation.participation(store, rid)
    counts = part["validators"][silent]
    assert counts["voted"] == counts["nil"] == 0 and counts["missing"] > 0
    for addr, c in part["validators"].items():
        if addr != silent:
            assert c["missing"] == 0
    missed = {(m["height"], m["vote_type"]) for m in part["missed"] if m["validator"] == silent}
    assert len(missed) >= 2 * 25


def test_slow_node_ranks_first(tmp_path: Path) -> None:
    cfg = build_config(nodes=5, heights=25, seed=9, base_latency_ms=40.0, spread_ms=60.0, slow_node=2,
                       silent=[], drop_rate=0.0, escalations=[], target_bytes=None)  # fmt: skip
    truth = simulate(cfg, tmp_path / "net")
    settings = Settings(data_dir=tmp_path / "store")
    store = DuckDBStore.open(settings.store_path, settings)
    ingest(store, "slow", [tmp_path / "net"], settings)
    rid = store.get_run("slow").id
    slow = next(n.label for n in store.nodes(rid) if n.p2p_id == truth.nodes[2]["node_id"])
    ranking = answers.node_ranking(store, rid)
    assert [r["rank"] for r in ranking] == [1, 2, 3, 4, 5]
    assert ranking[0]["node"] == slow
    assert ranking[0]["median_lateness_ms"] > 100 > ranking[1]["median_lateness_ms"]
    store.close()


def test_extra_rounds_are_explained(simulated: tuple[DuckDBStore, int, GroundTruth]) -> None:
    store, rid, truth = simulated
    silent_label = _label_of(store, rid, truth.nodes[4]["node_id"])
    escalated = {h["height"] for h in truth.heights if h["commit_round"] > 0}
    assert escalated  # the silent validator's turns to propose
    rows = timeline.heights(store, rid)
    assert {h["height"] for h in rows if h["rounds"] > 1} == escalated
    why = {(r["height"], r["round"]): r for r in timeline.round_explanations(store, rid)}
    for h in escalated:
        assert why[(h, 0)]["proposer"] == silent_label
        assert why[(h, 0)]["reason"] == f"no node received a proposal from {silent_label}"
        assert "propose" in why[(h, 0)]["timeouts"]
        assert why[(h, 1)]["reason"] == "committed in this round"


def _label_of(store: DuckDBStore, rid: int, p2p_id: str) -> str:
    return next(n.label for n in store.nodes(rid) if n.p2p_id == p2p_id)


def test_a_network_that_never_restarted_has_no_restarts(simulated: tuple[DuckDBStore, int, GroundTruth]) -> None:
    store, rid, _ = simulated
    assert store.query("SELECT count(*) FROM events WHERE run_id = ? AND kind = 'node_restart'", [rid]) == [(0,)]
    assert all(h["downtime_ms"] == 0 and h["restarts"] == [] for h in timeline.heights(store, rid))


def test_simulated_nodes_are_labelled_like_the_ground_truth(simulated: tuple[DuckDBStore, int, GroundTruth]) -> None:
    store, rid, truth = simulated
    by_id = {n["node_id"]: n["index"] for n in truth.nodes}
    assert {n.label: f"node{by_id[n.p2p_id]}" for n in store.nodes(rid) if n.p2p_id} == {
        f"node{i}": f"node{i}" for i in range(len(truth.nodes))
    }
