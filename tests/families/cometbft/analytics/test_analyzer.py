"""Every metric recomputed with NumPy from the raw events (reference.py beside this), on a simulated JSON-log
run with lost messages and skewed clocks (wire matching) and on the real v0.34 WAL testnet (logical matching)."""

from __future__ import annotations

import itertools
import math
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from bftscope.config import Settings
from bftscope.families.cometbft.analytics import (
    analyzer,
    answers,
    derive,
    network_latency,
    participation,
    rollups,
    timeline,
)
from bftscope.families.cometbft.synthetic.network import build_config, simulate
from bftscope.ingest.pipeline import ingest
from bftscope.store import DuckDBStore
from tests.conftest import require_data
from tests.families.cometbft.analytics import reference as ref

Run = tuple[DuckDBStore, int, list[ref.Delivery]]


def _open(root: Path, name: str, source: Path) -> Run:
    settings = Settings(data_dir=root / "store")
    store = DuckDBStore.open(settings.store_path, settings)
    ingest(store, name, [source], settings)
    rid = store.get_run(name).id
    return store, rid, ref.deliveries(store, rid)


@pytest.fixture(scope="module", params=["sim", "wal"])
def run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Run:
    root = tmp_path_factory.mktemp(request.param)
    if request.param == "wal":
        return _open(root, "wal", require_data("cometbft/tendermint-v0.34-4node-wal"))
    cfg = build_config(nodes=4, heights=14, seed=5, base_latency_ms=30.0, spread_ms=80.0, slow_node=None, silent=[],
                       drop_rate=0.03, escalations=[6], target_bytes=None, clock_skew_ms=20.0)  # fmt: skip
    simulate(cfg, root / "net")
    return _open(root, "sim", root / "net")


def _ids(store: DuckDBStore, rid: int) -> dict[int, str]:
    return {n.node: n.p2p_id or n.label for n in store.nodes(rid)}


def _votes(rows: list[ref.Delivery]) -> list[ref.Delivery]:
    return [d for d in rows if d.msg_type == "vote"]


def test_deliveries_table_equals_reference_matching(run: Run) -> None:
    store, rid, rows = run
    got = Counter(store.query("SELECT sender, receiver, msg_type, sent_ts, recv_ts FROM deliveries WHERE run_id = ?",
                              [rid]))  # fmt: skip
    want = Counter((d.sender, d.receiver, d.msg_type, d.sent, d.recv) for d in rows)
    assert got == want
    assert sum(got.values()) > 500


def test_lost_messages_count_against_the_sender(run: Run) -> None:
    store, _, rows = run
    if store.list_runs()[0]["name"] == "wal":  # a WAL records receipts only: every logical delivery was received
        assert all(d.recv is not None for d in rows)
    else:  # the simulator dropped 3 % of messages
        lost = sum(d.recv is None for d in rows)
        assert 0.01 < lost / len(rows) < 0.06


def test_pairwise_and_thresholds(run: Run) -> None:
    store, rid, rows = run
    ids = _ids(store, rid)
    want = ref.grouped(_votes(rows), "sender", "receiver")
    got = {(r["sender"], r["receiver"]): r for r in analyzer.pairwise_latency(store, rid)}
    assert len(got) == len(want) == 12
    for (s, r), lat in want.items():
        row = got[(ids[s], ids[r])]
        assert row["count"] == len(lat)
        for q, k in ((0.5, "p50Ms"), (0.95, "p95Ms"), (0.99, "p99Ms")):
            assert row[k] == pytest.approx(ref.pct(lat, q), rel=1e-9)
    everything = np.concatenate(list(want.values())) * 1e6
    th = analyzer.vote_thresholds(store, rid)
    for name, q in analyzer.THRESHOLDS.items():
        assert th[name] == pytest.approx(ref.pct(everything, q), rel=1e-9)


def test_vote_latencies_pages_cover_the_rows_over_the_threshold_once(run: Run) -> None:
    store, rid, rows = run
    lat = np.array([d.latency for d in _votes(rows) if d.latency is not None], dtype=np.float64)
    threshold = ref.pct(lat, 0.95)
    want = sorted(d.sent for d in _votes(rows) if d.latency is not None and d.latency >= threshold)
    seen: list[int] = []
    page = 1
    while True:
        res = analyzer.vote_latencies(store, rid, page=page, per_page=7, threshold="p95")
        assert res["pagination"]["total"] == len(want)
        assert res["pagination"]["totalPages"] == math.ceil(len(want) / 7)
        if not res["data"]:
            break
        seen += [r["sentTime"] for r in res["data"]]
        assert all(r["latencyMs"] * 1e6 >= threshold - 1 for r in res["data"])
        page += 1
    assert len(seen) == len(want) and seen == sorted(seen)


def test_vote_statistics_with_spikes(run: Run) -> None:
    store, rid, rows = run
    ids = _ids(store, rid)
    want = ref.grouped(_votes(rows), "sender", "receiver", "vote_type")
    got = analyzer.vote_statistics(store, rid)
    assert len(got) == len(want)
    for row in got:
        key = next(k for k in want if (ids[k[0]], ids[k[1]], k[2]) == (row["sender"], row["receiver"], row["voteType"]))
        lat = want[key]
        assert row["count"] == len(lat)
        for q in (50, 90, 95, 99):
            assert row[f"p{q}"] == pytest.approx(ref.pct(lat, q / 100), rel=1e-9)
        assert row["max"] == pytest.approx(lat.max())
        p95 = ref.pct(lat, 0.95)
        assert row["spikePerc"] == pytest.approx(100 * np.count_nonzero(lat >= 2 * p95) / len(lat))


def test_timeseries_success_rate_and_jitter(run: Run) -> None:
    store, rid, rows = run
    ids = _ids(store, rid)
    want = ref.grouped(_votes(rows), "height", "sender", "receiver")
    got = analyzer.latency_timeseries(store, rid)
    assert len(got) == len(want)
    for row in got:
        lat = next(v for k, v in want.items() if (k[0], ids[k[1]], ids[k[2]]) == (row["height"], row["sender"],
                                                                                     row["receiver"]))  # fmt: skip
        assert row["latencyMs"] == pytest.approx(ref.pct(lat, 0.5), rel=1e-9) and row["count"] == len(lat)
    sent: Counter[tuple[Any, ...]] = Counter()
    received: Counter[tuple[Any, ...]] = Counter()
    for d in _votes(rows):
        key = (d.height, ids[d.sender], ids[d.receiver])
        sent[key] += 1
        received[key] += d.recv is not None
    rates = analyzer.success_rate(store, rid)
    assert {(r["height"], r["sender"], r["receiver"]): (r["sentCount"], r["recvCount"]) for r in rates} == {
        k: (sent[k], received[k]) for k in sent
    }
    stats = analyzer.latency_histogram_jitter(store, rid)
    pairs = ref.grouped(_votes(rows), "sender", "receiver")
    for j in stats["jitter"]:
        lat = next(v for k, v in pairs.items() if (ids[k[0]], ids[k[1]]) == (j["sender"], j["receiver"]))
        assert j["stdDevMs"] == pytest.approx(np.std(lat, ddof=1), rel=1e-6)
    everything = np.concatenate(list(pairs.values()))
    counts, edges = np.histogram(everything, bins=10, range=(everything.min(), everything.max()))
    assert [b["count"] for b in stats["histogram"]] == counts.tolist()
    assert [b["lower"] for b in stats["histogram"]] == pytest.approx(edges[:-1].tolist())


def test_network_pair_and_node_stats(run: Run) -> None:
    store, rid, rows = run
    ids = _ids(store, rid)
    pooled: dict[tuple[Any, ...], list[float]] = defaultdict(list)
    for d in rows:
        if d.latency is not None:
            pair = tuple(sorted((ids[d.sender], ids[d.receiver])))
            pooled[(*pair, d.msg_type)].append(d.latency / 1e6)
            pooled[(*pair, "overall")].append(d.latency / 1e6)
    got = network_latency.network_pair_stats(store, rid)
    assert len(got) == 6
    checked = 0
    for pair in got:
        for h in [*pair["messageTypes"].values(), pair["overallStats"]]:
            lat = np.asarray(pooled[(h["node1Id"], h["node2Id"], h["messageType"])])
            p50, p95, p99 = (ref.pct(lat, q) for q in (0.5, 0.95, 0.99))
            assert h["count"] == len(lat)
            assert (h["medianLatencyMs"], h["p95LatencyMs"], h["p99LatencyMs"]) == pytest.approx((p50, p95, p99))
            assert h["meanLatencyMs"] == pytest.approx(lat.mean())
            assert h["belowP50Count"] == np.count_nonzero(lat < p50)
            assert h["aboveP99Count"] == np.count_nonzero(lat >= p99)
            assert h["belowP50Count"] + h["p50ToP95Count"] + h["p95ToP99Count"] + h["aboveP99Count"] == len(lat)
            checked += 1
    assert checked == len(pooled)
    nodes = {n["nodeId"]: n for n in network_latency.network_node_stats(store, rid)}
    unmatched = dict(store.query("SELECT receiver, sum(count) FROM unmatched_receipts WHERE run_id = ? GROUP BY 1",
                                 [rid]))  # fmt: skip
    for node, label in ids.items():
        mine = [d for d in rows if d.sender == node]
        assert nodes[label]["totalSends"] == len(mine)
        assert nodes[label]["unmatchedSends"] == sum(d.recv is None for d in mine)
        got_in = sum(1 for d in rows if d.receiver == node and d.recv is not None)
        assert nodes[label]["totalReceives"] == got_in + unmatched.get(node, 0)
        assert nodes[label]["peerCount"] == 3


def test_overview_is_a_true_p95(run: Run) -> None:
    store, rid, rows = run
    ids = _ids(store, rid)
    lat = np.array([d.latency / 1e6 for d in rows if d.latency is not None])
    ov = network_latency.network_overview(store, rid)
    assert ov["overallP95LatencyMs"] == pytest.approx(ref.pct(lat, 0.95))
    assert ov["overallStats"]["count"] == len(lat)
    by_type = ref.grouped(rows, "msg_type")
    assert ov["messageTypeLatency"] == pytest.approx({k[0]: ref.pct(v, 0.95) for k, v in by_type.items()})
    per_node: dict[str, list[float]] = defaultdict(list)
    for d in rows:
        if d.latency is not None:
            per_node[ids[d.sender]].append(d.latency / 1e6)
            per_node[ids[d.receiver]].append(d.latency / 1e6)
    want = {k: ref.pct(v, 0.95) for k, v in per_node.items()}
    assert ov["nodeLatencyContribution"] == pytest.approx(want)
    top = max(want, key=lambda k: (want[k], -ord(k[0])))
    assert ov["nodeWithHighestAvgP95"]["latencyMs"] == pytest.approx(want[top])


def test_end_to_end_per_node_then_across_nodes(run: Run) -> None:
    store, rid, _ = run
    evs = ref.events(store, rid)
    has_new_round = {e.node for e in evs if e.kind == "step" and e.step == "new_round"}
    starts: dict[tuple[int, int], list[int]] = defaultdict(list)
    for e in evs:
        if e.kind == "step" and (e.step == "new_round" or (e.step == "propose" and e.node not in has_new_round)):
            starts[(e.node, e.height or 0)].append(e.ts)
    complete: dict[tuple[int, int], int] = {}
    for e in evs:
        if e.kind == "block_complete":
            complete.setdefault((e.node, e.height or 0), e.ts)
    if store.list_runs()[0]["name"] == "wal":  # the WAL parser derived them: recompute from the raw records
        assert complete == _wal_blocks_complete(store, rid) and len(complete) == 4 * 77
    if not complete:  # WAL: the last of the (latest round's) parts
        parts: dict[tuple[int, int, int], dict[int, int]] = defaultdict(dict)
        for e in evs:
            if e.msg_type == "block_part" and e.kind in ("msg_received", "msg_internal"):
                parts[(e.node, e.height or 0, e.round or 0)].setdefault(e.part_index or 0, e.ts)
        for (node, h, _), p in sorted(parts.items()):
            complete[(node, h)] = max(p.values())  # later rounds overwrite earlier ones
    per_height: dict[int, list[float]] = defaultdict(list)
    for (node, h), t in complete.items():
        before = [s for s in starts.get((node, h), []) if s <= t]
        if before:
            per_height[h].append((t - max(before)) / 1e6)
    got = {r["height"]: r for r in analyzer.end_to_end(store, rid)}
    assert set(got) == set(per_height) and len(got) > 10
    if store.list_runs()[0]["name"] == "wal":  # every height, every node (the last part's arrival, as before)
        assert sorted(got) == list(range(1, 78)) and {r["nodes"] for r in got.values()} == {4}
    for h, v in per_height.items():
        assert got[h]["nodes"] == len(v)
        assert got[h]["p50Ms"] == pytest.approx(ref.pct(v, 0.5)) and got[h]["p95Ms"] == pytest.approx(ref.pct(v, 0.95))


def _wal_blocks_complete(store: DuckDBStore, rid: int) -> dict[tuple[int, int], int]:
    """(node, height) → first time the node held every part of a proposal of that height: per (height, round), the
    proposal's part total and the distinct part indexes taken in, from the WAL's records in order."""
    rows = store.query(
        "SELECT node, ts, kind, height, round, msg_type, part_index, extra FROM events WHERE run_id = ?"
        " AND (msg_type IN ('proposal', 'block_part') AND kind IN ('msg_received', 'msg_internal')"
        " OR kind = 'height_end') ORDER BY node, seq",
        [rid],
    )
    out: dict[tuple[int, int], int] = {}
    held: dict[tuple[int, int, int], set[int]] = defaultdict(set)
    totals: dict[tuple[int, int, int], int] = {}
    ended: dict[int, int] = {}
    for node, ts, kind, h, r, mtype, index, extra in rows:
        if kind == "height_end":
            ended[node] = h
            continue
        if h <= ended.get(node, -1):  # the node is past that height: its state ignores the record
            continue
        if mtype == "proposal":
            totals.setdefault((node, h, r), orjson.loads(extra)["parts_total"])
        else:
            held[(node, h, r)].add(index)
        total = totals.get((node, h, r))
        if total and held[(node, h, r)] >= set(range(total)):
            out.setdefault((node, h), ts)
    return out


def test_link_latency_and_skew(run: Run) -> None:
    store, rid, rows = run
    labels = {n.node: n.label for n in store.nodes(rid)}
    want = ref.grouped(rows, "sender", "receiver")
    links = {(r["sender"], r["receiver"]): r for r in answers.link_latency(store, rid, by_type=False)}
    for (s, r), lat in want.items():
        assert links[(labels[s], labels[r])]["p50_ms"] == pytest.approx(ref.pct(lat, 0.5))
    for sk in answers.clock_skew(store, rid):
        a = next(k for k, v in labels.items() if v == sk["a"])
        b = next(k for k, v in labels.items() if v == sk["b"])
        d1, d2 = ref.pct(want[(a, b)], 0.5), ref.pct(want[(b, a)], 0.5)
        m1, m2 = min(want[(a, b)]), min(want[(b, a)])
        assert sk["median_estimate_ms"] == pytest.approx((d1 - d2) / 2)
        assert sk["one_way_ms"] == pytest.approx((d1 + d2) / 2)
        assert sk["symmetric_floor_estimate_ms"] == pytest.approx((m1 - m2) / 2)
        assert sk["bounds_ms"] == pytest.approx([-m2, m1])
        if sk["status"] == "estimated":
            assert sk["b_ahead_of_a_ms"] == sk["symmetric_floor_estimate_ms"]
            assert sk["interval_ms"][0] <= sk["b_ahead_of_a_ms"] <= sk["interval_ms"][1]
        else:
            assert sk["b_ahead_of_a_ms"] is None and sk["interval_ms"] == sk["bounds_ms"]


def test_step_durations(run: Run) -> None:
    store, rid, _ = run
    labels = {n.node: n.label for n in store.nodes(rid)}
    steps: dict[int, list[ref.Ev]] = defaultdict(list)
    back: dict[int, list[int]] = defaultdict(list)  # when each node came back from a restart
    for e in ref.events(store, rid):
        if e.kind == "step":
            steps[e.node].append(e)
        elif e.kind == "node_restart":
            back[e.node].append(e.ts)
    want: dict[tuple[str, str], list[float]] = defaultdict(list)
    for node, evs in steps.items():
        for cur, nxt in itertools.pairwise(evs):
            if any(cur.ts <= t <= nxt.ts for t in back[node]):
                continue  # the node was down, not in the step
            want[(labels[node], cur.step or "")].append((nxt.ts - cur.ts) / 1e6)
    got = timeline.step_durations(store, rid)
    assert len(got) == len(want)
    for r in got:
        v = want[(r["node"], r["step"])]
        assert r["count"] == len(v) and r["p50_ms"] == pytest.approx(ref.pct(v, 0.5))


def test_rollups_equal_live_answers_and_windows_narrow(run: Run) -> None:
    store, rid, _ = run
    for name, fn in rollups.METRICS.items():
        assert rollups.answer(store, rid, name) == rollups.answer(store, rid, name, analyzer.Window(0, 2**62)), name
        live = fn(store, rid, analyzer.WHOLE_RUN)
        want = analyzer.round_ms(live) if name in rollups.ANALYZER_METRICS else live
        assert rollups.answer(store, rid, name) == orjson.loads(orjson.dumps(want)), name
    first, last = store.query("SELECT min(sent_ts), max(sent_ts) FROM deliveries WHERE run_id = ?", [rid])[0]
    half = analyzer.Window(first, first + (last - first) // 2)
    whole = sum(r["count"] for r in analyzer.pairwise_latency(store, rid))
    part = sum(r["count"] for r in analyzer.pairwise_latency(store, rid, half))
    assert 0 < part < whole
    # a re-derive (as after a second ingest) replaces the rollups instead of adding to them
    derive.rebuild(store, rid)
    rollups.refresh(store, rid)
    assert store.query("SELECT count(*) FROM rollups WHERE run_id = ?", [rid])[0][0] == len(rollups.METRICS)


def _ms_floats(value: Any, ms: bool = False) -> list[float]:
    """Every float under a millisecond key ("…Ms", a percentile or bound of a latency row, overview maps)."""
    if isinstance(value, float):
        return [value] if ms else []
    if isinstance(value, dict):
        return [x for k, v in value.items() for x in _ms_floats(v, ms or k.endswith("Ms") or k in (
            "p50", "p90", "p95", "p99", "max", "lower", "upper", "messageTypeLatency", "nodeLatencyContribution"))]
    if isinstance(value, list):
        return [x for v in value for x in _ms_floats(v, ms)]
    return []


def test_analyzer_answers_round_milliseconds_to_the_microsecond(run: Run) -> None:
    store, rid, _ = run
    changed = 0
    for name in rollups.ANALYZER_METRICS:
        live = _ms_floats(rollups.METRICS[name](store, rid, analyzer.WHOLE_RUN))
        for answered in (rollups.answer(store, rid, name), rollups.answer(store, rid, name, analyzer.Window(0, 2**62))):
            got = _ms_floats(answered)
            assert len(got) == len(live), name
            for g, v in zip(got, live, strict=True):
                assert g == round(v, 3), (name, g, v)
            changed += sum(g != v for g, v in zip(got, live, strict=True))
    assert changed > 0  # the raw answers do carry sub-microsecond digits, so the rounding is exercised
    page = analyzer.round_ms(analyzer.vote_latencies(store, rid, per_page=50, threshold="p50"))
    assert page["data"] and all(r["latencyMs"] == round(r["latencyMs"], 3) for r in page["data"])


def test_node_ranking_and_heights(run: Run) -> None:
    store, rid, _ = run
    nodes = store.nodes(rid)
    labels = {n.node: n.label for n in nodes}
    by_validator = {n.validator: n.node for n in nodes if n.validator}
    index_to_validator = dict(store.query(
        "SELECT DISTINCT validator_index, validator FROM events WHERE run_id = ? AND msg_type = 'vote'"
        " AND validator IS NOT NULL AND validator_index IS NOT NULL", [rid]))  # fmt: skip
    first: dict[tuple[Any, ...], int] = {}
    for e in ref.events(store, rid):  # first receipt of each vote at each receiver, own votes excluded
        if e.msg_type == "vote" and e.kind in ("msg_received", "p2p_recv") and e.validator_index is not None:
            signer = by_validator.get(index_to_validator.get(e.validator_index))
            if signer is not None and signer != e.node:
                first.setdefault((e.node, e.height, e.round, e.vote_type, signer), e.ts)
    groups: dict[tuple[Any, ...], list[tuple[int, int]]] = defaultdict(list)
    for (receiver, h, r, vt, signer), ts in first.items():
        groups[(receiver, h, r, vt)].append((signer, ts))
    lateness: dict[int, list[float]] = defaultdict(list)
    for arrivals in groups.values():
        med = float(np.median([ts for _, ts in arrivals]))
        for signer, ts in arrivals:
            lateness[signer].append((ts - med) / 1e6)
    want = {labels[s]: ref.pct(v, 0.5) for s, v in lateness.items()}
    got = {r["node"]: r for r in answers.node_ranking(store, rid)}
    assert set(got) == set(want)
    for node, score in want.items():
        assert got[node]["median_lateness_ms"] == pytest.approx(score, abs=1e-6)
        assert got[node]["votes"] == len(lateness[next(s for s, lab in labels.items() if lab == node)])
    # heights: rounds = highest round entered + 1; duration = first step anywhere → last node's first commit
    steps: dict[int, list[ref.Ev]] = defaultdict(list)
    commits: dict[tuple[int, int], int] = {}
    for e in ref.events(store, rid):
        if e.kind == "step" and (e.height or 0) > 0:
            steps[e.height or 0].append(e)
        if e.kind in ("block_committed", "height_end"):
            commits.setdefault((e.node, e.height or 0), e.ts)
    got_h = {h["height"]: h for h in timeline.heights(store, rid)}
    assert set(got_h) == set(steps)
    # Restarts (each node at most once in these runs): the network was down from the last node going
    # silent to the first coming back, if every node restarted; that is not part of any height.
    down = store.query("SELECT node, json_extract(extra, '$.down_from_ns')::BIGINT, ts FROM events"
                       " WHERE run_id = ? AND kind = 'node_restart'", [rid])  # fmt: skip
    nodes = {n for (n,) in store.query("SELECT DISTINCT node FROM events WHERE run_id = ?", [rid])}
    window = (max(r[1] for r in down), min(r[2] for r in down)) if {r[0] for r in down} == nodes else (0, 0)
    for h, evs in steps.items():
        assert got_h[h]["rounds"] == max(e.round or 0 for e in evs) + 1
        ends = [ts for (_, hh), ts in commits.items() if hh == h]
        if ends:
            lo, hi = min(e.ts for e in evs), max(ends)
            gap = max(0, min(hi, window[1]) - max(lo, window[0]))
            assert got_h[h]["duration_ms"] == pytest.approx((hi - lo - gap) / 1e6)
            assert got_h[h]["commit_spread_ms"] == pytest.approx((max(ends) - min(ends)) / 1e6)


def test_participation_statuses(run: Run) -> None:
    store, rid, _ = run
    evs = ref.events(store, rid)
    extra = dict(store.query("SELECT id, block_hash IS NOT NULL FROM events WHERE run_id = ?", [rid]))
    vals = dict(store.query("SELECT id, validator FROM events WHERE run_id = ? AND validator IS NOT NULL", [rid]))
    own = {n.node: n.validator for n in store.nodes(rid)}
    by_index = {e_index: v for e_index, v in store.query(
        "SELECT DISTINCT validator_index, validator FROM events WHERE run_id = ? AND msg_type = 'vote'"
        " AND validator IS NOT NULL AND validator_index IS NOT NULL", [rid])}  # fmt: skip
    rounds = {(e.height, e.round) for e in evs if e.kind == "step" and e.step in ("propose", "prevote", "precommit")}
    seen: dict[tuple[Any, ...], bool] = {}
    kinds = ("msg_received", "msg_internal", "p2p_recv", "p2p_send", "vote_signed", "vote_added")
    for e in evs:
        if e.msg_type == "vote" and e.id in vals and e.kind in kinds:
            key = (e.height, e.round, e.vote_type, vals[e.id])
            seen[key] = seen.get(key, False) or extra[e.id]
    moved: dict[tuple[Any, ...], int] = {}
    for e in evs:
        if e.kind == "step" and e.step == "precommit":
            moved.setdefault(("pc", e.node, e.height, e.round), e.ts)
        if e.kind == "step" and e.step == "commit":
            moved.setdefault(("cm", e.node, e.height), e.ts)
    first: dict[tuple[Any, ...], int] = {}
    for e in evs:
        if e.msg_type == "vote" and e.kind in ("msg_received", "p2p_recv") and e.validator_index is not None:
            v = vals.get(e.id) or by_index.get(e.validator_index)
            if v is not None and v != own.get(e.node):
                first.setdefault((e.node, e.height, e.round, e.vote_type, v), e.ts)
    late: dict[tuple[Any, ...], list[bool]] = defaultdict(list)
    for (node, h, r, vt, v), ts in first.items():
        bound = moved.get(("pc", node, h, r)) if vt == "prevote" else moved.get(("cm", node, h))
        if bound is not None:
            late[(h, r, vt, v)].append(ts > bound)
    validators = sorted({v for v in own.values() if v} | {k[3] for k in seen})
    step_heights: dict[int, list[int]] = defaultdict(list)
    for e in evs:
        if e.kind == "step":
            step_heights[e.node].append(e.height or 0)
    first_full = max(min(h) + 1 for h in step_heights.values())
    last_full = min(max(h) - 1 for h in step_heights.values())
    want: dict[str, Counter[str]] = {v: Counter() for v in validators}
    for h, r in rounds:
        for vt in ("prevote", "precommit"):
            for v in validators:
                key = (h, r, vt, v)
                if key not in seen:
                    status = "edge_missing" if (h < first_full or h > last_full) else "missing"
                elif not seen[key]:
                    status = "nil"
                elif late.get(key) and np.mean(late[key]) > 0.5:
                    status = "late"
                else:
                    status = "voted"
                want[v][status] += 1
    got = participation.participation(store, rid)["validators"]
    for v in validators:
        assert {k: got[v][k] for k in ("voted", "late", "nil", "missing", "edge_missing")} == \
            {k: want[v][k] for k in ("voted", "late", "nil", "missing", "edge_missing")}, v  # fmt: skip


def test_height_detail_shows_every_node_and_the_extra_round(run: Run) -> None:
    store, rid, _ = run
    escalated = [h["height"] for h in timeline.heights(store, rid) if h["rounds"] > 1]
    height = escalated[0] if escalated else 5
    detail = timeline.height_detail(store, rid, height)
    assert len(detail) == 4
    for node in detail:
        at = [s["at_ms"] for s in node["steps"]]
        assert at == sorted(at) and at[0] == 0.0
        assert node["committed_ms"] is not None and node["committed_ms"] >= 0
        if escalated:
            assert max(s["round"] for s in node["steps"]) >= 1 and node["timeouts"]
    assert bool(escalated) == (store.list_runs()[0]["name"] == "sim")  # the simulation escalated height 6
