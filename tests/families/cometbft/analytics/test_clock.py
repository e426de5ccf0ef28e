"""The clock-skew estimator (analytics/clock.py) against the simulator's ground truth: a node with a slow
outbound path is not called skewed, injected clock offsets are recovered, an asymmetric link is caught by
the triangles it spoils, and every stated interval holds the truth."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from bftscope.cli import app
from bftscope.config import Settings
from bftscope.families.cometbft.analytics import answers, clock, rollups
from bftscope.families.cometbft.analytics.analyzer import WHOLE_RUN
from bftscope.families.cometbft.synthetic.network import GroundTruth, SimConfig, build_config, simulate
from bftscope.ingest.pipeline import ingest
from bftscope.store import DuckDBStore

Sim = tuple[DuckDBStore, int, GroundTruth, dict[str, int]]


def _sim(root: Path, cfg: SimConfig) -> Sim:
    truth = simulate(cfg, root / "net")
    settings = Settings(data_dir=root / "store")
    store = DuckDBStore.open(settings.store_path, settings)
    ingest(store, "sim", [root / "net"], settings)
    rid = store.get_run("sim").id
    by_id = {n["node_id"]: n["index"] for n in truth.nodes}
    return store, rid, truth, {n.label: by_id[n.p2p_id] for n in store.nodes(rid) if n.p2p_id}


@pytest.fixture(scope="module")
def slow_outbound(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Zero skew; node0 has the real misconfiguration (flush throttle 200 ms against 10 ms elsewhere)."""
    cfg = build_config(nodes=4, heights=10, seed=3, base_latency_ms=40.0, spread_ms=60.0, slow_node=0)
    sim = _sim(tmp_path_factory.mktemp("slow"), cfg)
    yield sim
    sim[0].close()


@pytest.fixture(scope="module")
def skewed(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Symmetric paths; node1's clock 40 ms ahead, node2's 25 ms behind."""
    cfg = build_config(nodes=4, heights=10, seed=4, base_latency_ms=40.0, spread_ms=60.0,
                       clock_offsets={1: 40.0, 2: -25.0})  # fmt: skip
    sim = _sim(tmp_path_factory.mktemp("skewed"), cfg)
    yield sim
    sim[0].close()


def _true_lead(truth: GroundTruth, a: int, b: int) -> float:
    return truth.clock_offset_ms[b] - truth.clock_offset_ms[a]


def test_slow_outbound_path_is_not_called_skew(slow_outbound: Sim) -> None:
    store, rid, truth, idx = slow_outbound
    assert truth.clock_offset_ms == [0.0] * 4
    pairs = answers.clock_skew(store, rid)
    assert len(pairs) == 6
    for p in pairs:
        a, b = idx[p["a"]], idx[p["b"]]
        assert p["interval_ms"][0] <= 0.0 <= p["interval_ms"][1], p
        if 0 in (a, b):
            # the median-based reading is the old claim of tens of ms of skew ...
            assert abs(p["median_estimate_ms"]) > 40
            # ... the quantiles and message types disagree, so no number is claimed
            assert p["status"] == "not determinable" and p["b_ahead_of_a_ms"] is None
            assert p["asymmetry_ms"] > 40
        else:
            assert p["status"] == "estimated" and abs(p["b_ahead_of_a_ms"]) < 2
    nodes = {idx[n["node"]]: n for n in answers.clock_offsets(store, rid)}
    assert nodes[0]["status"] == "not determinable" and nodes[0]["offset_ms"] is None
    assert nodes[0]["interval_ms"][0] <= 0.0 <= nodes[0]["interval_ms"][1]
    for i in (1, 2, 3):
        assert nodes[i]["status"] == "estimated" and abs(nodes[i]["offset_ms"]) < 2


def test_slow_outbound_links_keep_their_latency_within_the_interval(slow_outbound: Sim) -> None:
    store, rid, _, idx = slow_outbound
    for row in answers.link_latency(store, rid, by_type=False):
        lo, hi = row["corrected_p50_interval_ms"]
        assert lo <= row["p50_ms"] <= hi  # true offset 0: the true median delay is the measured one
        if 0 in (idx[row["sender"]], idx[row["receiver"]]):
            assert row["clock_status"] == "not determinable" and row["corrected_p50_ms"] is None
        else:
            assert row["clock_status"] == "estimated" and abs(row["corrected_p50_ms"] - row["p50_ms"]) < 2


def test_injected_offsets_are_recovered(skewed: Sim) -> None:
    store, rid, truth, idx = skewed
    assert truth.clock_offset_ms == [0.0, 40.0, -25.0, 0.0]
    for p in answers.clock_skew(store, rid):
        want = _true_lead(truth, idx[p["a"]], idx[p["b"]])
        assert p["status"] == "estimated", p
        assert abs(p["b_ahead_of_a_ms"] - want) < 2 and p["interval_ms"][0] <= want <= p["interval_ms"][1], p
    nodes = answers.clock_offsets(store, rid)
    ref = next(idx[n["node"]] for n in nodes if n["is_reference"])
    for n in nodes:
        want = _true_lead(truth, ref, idx[n["node"]])
        assert n["status"] == "estimated" and abs(n["offset_ms"] - want) < 2
        assert n["interval_ms"][0] <= want <= n["interval_ms"][1]


def test_corrected_latency_is_the_true_delay_within_its_interval(skewed: Sim) -> None:
    store, rid, truth, idx = skewed
    links = answers.link_latency(store, rid, by_type=False)
    assert len(links) == 12
    for row in links:
        a, b = idx[row["sender"]], idx[row["receiver"]]
        true_delay = truth.latency_ms[a][b]  # no flush throttle, jitter with median 0
        assert abs(row["corrected_p50_ms"] - true_delay) < 2
        lo, hi = row["corrected_p50_interval_ms"]
        assert lo <= true_delay <= hi, (row, true_delay)


def test_asymmetric_link_is_caught_by_its_triangles(tmp_path: Path) -> None:
    # node0 → node1 takes 100 ms longer than node1 → node0, every message, every time: a constant
    # asymmetry on one link, invisible to that pair's own quantiles and message types
    lat = [[0, 30, 50, 60], [130, 0, 40, 70], [50, 40, 0, 45], [60, 70, 45, 0]]
    cfg = SimConfig(nodes=4, heights=6, seed=8, latency_ms=[[float(x) for x in r] for r in lat], jitter_ms=0.5)
    store, rid, _, idx = _sim(tmp_path, cfg)
    pairs = {frozenset((idx[p["a"]], idx[p["b"]])): p for p in answers.clock_skew(store, rid)}
    bad = pairs[frozenset((0, 1))]
    assert abs(bad["symmetric_floor_estimate_ms"]) > 40  # the pair alone would report 50 ms of skew
    assert bad["status"] == "not determinable" and bad["evidence"]["triangle_residual_ms"] > 40
    for key, p in pairs.items():
        if key != frozenset((0, 1)):
            assert p["status"] == "estimated" and abs(p["b_ahead_of_a_ms"]) < 2, p
    # node0 and node1 are still placed, through node2 or node3
    for n in answers.clock_offsets(store, rid):
        assert n["status"] == "estimated" and abs(n["offset_ms"]) < 2
    store.close()


def test_cli_simulate_takes_clock_offsets(tmp_path: Path) -> None:
    out = tmp_path / "net"
    r = CliRunner().invoke(app, ["simulate", str(out), "--nodes", "3", "--heights", "2", "--clock-offset", "node1=+40",
                                 "--clock-offset", "2=-25.5"])  # fmt: skip
    assert r.exit_code == 0, r.output
    truth = GroundTruth.load(out / "ground_truth.json")
    assert truth.clock_offset_ms == [0.0, 40.0, -25.5]
    assert [n["clock_offset_ms"] for n in truth.nodes] == [0.0, 40.0, -25.5]
    for bad in ("node1:40", "node7=+5"):
        r = CliRunner().invoke(app, ["simulate", str(tmp_path / "x"), "--nodes", "3", "--clock-offset", bad])
        assert r.exit_code == 1 and "clock" in r.output.lower(), r.output


def test_a_refresh_estimates_the_clocks_once_and_stores_the_same_answers(
    skewed: Sim, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Links, clock skew and clock offsets all rest on one estimate: a rollup refresh computes it once (on
    any of its threads), and what it stores equals each answer computed on its own."""
    store, rid, _, _ = skewed
    alone = {name: rollups.METRICS[name](store, rid, WHOLE_RUN) for name in ("links", "clock_skew", "clock_offsets")}
    calls: list[int] = []
    real = clock._estimate_now

    def counted(s: Any, r: int) -> Any:
        calls.append(r)
        return real(s, r)

    monkeypatch.setattr(clock, "_estimate_now", counted)
    rollups.refresh(store, rid)
    assert calls == [rid]
    for name, value in alone.items():
        assert rollups.answer(store, rid, name) == orjson.loads(rollups._encode(name, value)), name
    # outside a refresh nothing is kept: a later answer estimates again
    answers.clock_skew(store, rid)
    assert calls == [rid, rid]
