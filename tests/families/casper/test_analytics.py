"""The Casper answers on streams built from real node payloads with known timings (docs/casper.md "Analytics").

Every expected figure is computed here from the scenario's ground truth (:mod:`.scenario`) with plain Python
and NumPy — exact percentiles with linear interpolation, NumPy's default — never from the code's output.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from bftscope.config import Settings
from bftscope.families.casper.analytics.blocktimes import block_times
from bftscope.families.casper.analytics.deploys import deploys
from bftscope.families.casper.analytics.eras import eras
from bftscope.families.casper.analytics.proposers import proposers
from bftscope.families.casper.analytics.signatures import signatures
from bftscope.families.casper.analytics.window import WHOLE, Window
from bftscope.families.casper.store import CasperStore
from bftscope.store.duckdb import DuckDBStore
from tests.families.casper.scenario import NODES, VALIDATORS, Truth, build
from tests.families.casper.streams import Payloads

NAME = {key: name for name, key in VALIDATORS.items()}


@pytest.fixture
def store(settings: Settings) -> Iterator[DuckDBStore]:
    s = DuckDBStore.open(settings.store_path, settings)
    yield s
    s.close()


@pytest.fixture(scope="module")
def scenario() -> tuple[list[Any], Truth]:
    return build(Payloads.load())


@pytest.fixture
def filled(store: DuckDBStore, scenario: tuple[list[Any], Truth]) -> tuple[DuckDBStore, int, Truth]:
    """The scenario stored in shuffled batches: a store's answers must not depend on arrival order."""
    events, truth = scenario
    run = store.get_or_create_run("net:casper-test", "casper")
    cs = CasperStore(store, run.id)
    shuffled = list(events)
    random.Random(3).shuffle(shuffled)
    for i in range(0, len(shuffled), 97):
        cs.write(shuffled[i : i + 97])
    return store, run.id, truth


def _stats(xs: list[float]) -> dict[str, Any]:
    a = np.asarray(xs, dtype=float)
    if not len(a):
        return {"count": 0, "p50_ms": None, "p90_ms": None, "p99_ms": None, "mean_ms": None, "min_ms": None,
                "max_ms": None}  # fmt: skip
    return {"count": len(a), "p50_ms": float(np.percentile(a, 50)), "p90_ms": float(np.percentile(a, 90)),
            "p99_ms": float(np.percentile(a, 99)), "mean_ms": float(a.mean()), "min_ms": float(a.min()),
            "max_ms": float(a.max())}  # fmt: skip


def _close(got: dict[str, Any], want: dict[str, Any]) -> None:
    assert got.keys() == want.keys()
    for k, v in want.items():
        if v is None or isinstance(v, int):
            assert got[k] == v, k
        else:
            assert got[k] == pytest.approx(v, rel=1e-9, abs=1e-6), k


def _seen_heights(t: Truth) -> list[int]:
    return sorted({h for _, h in t.block_seen})


def _intervals(t: Truth, heights: list[int]) -> dict[int | None, list[float]]:
    have = set(heights)
    out: dict[int | None, list[float]] = {None: []}
    for h in heights:
        if h - 1 in have:
            ms = float(t.ts_ms[h] - t.ts_ms[h - 1])
            out[None].append(ms)
            out.setdefault(t.era[h], []).append(ms)
    return out


def test_block_times_are_intervals_of_consecutive_heights_only(filled: tuple[DuckDBStore, int, Truth]) -> None:
    store, run_id, t = filled
    heights = _seen_heights(t)
    iv = _intervals(t, heights)
    got = block_times(store, run_id, WHOLE)
    assert got["blocks"] == len(heights)
    assert got["missing_heights"] == heights[-1] - heights[0] + 1 - len(heights) == 2
    _close(got["intervals"], _stats(iv[None]))
    assert got["intervals"]["count"] == len(heights) - 2  # one gap (120–121): two runs of consecutive heights
    assert [e["era_id"] for e in got["eras"]] == sorted(k for k in iv if k is not None)
    for e in got["eras"]:
        _close(e["intervals"], _stats(iv[e["era_id"]]))


def test_a_window_keeps_the_blocks_whose_timestamp_is_inside(filled: tuple[DuckDBStore, int, Truth]) -> None:
    store, run_id, t = filled
    lo_ms, hi_ms = t.ts_ms[115], t.ts_ms[150]
    window = Window((lo_ms * 1_000_000) - 1, hi_ms * 1_000_000 + 999_999)
    heights = [h for h in _seen_heights(t) if lo_ms <= t.ts_ms[h] <= hi_ms]
    got = block_times(store, run_id, window)
    assert got["blocks"] == len(heights) and got["first_height"] == 115 and got["last_height"] == 150
    _close(got["intervals"], _stats(_intervals(t, heights)[None]))
    assert got["window"]["from"] is not None


def test_eras_heights_duration_weights_faults_and_equivocators(filled: tuple[DuckDBStore, int, Truth]) -> None:
    store, run_id, t = filled
    heights = _seen_heights(t)
    iv = _intervals(t, heights)
    got = {e["era_id"]: e for e in eras(store, run_id, WHOLE)}
    assert sorted(got) == sorted(set(t.era.values()))
    for era, e in got.items():
        hs = [h for h in heights if t.era[h] == era]
        assert (e["first_height"], e["last_height"], e["blocks"]) == (hs[0], hs[-1], len(hs))
        assert e["duration_ms"] == t.ts_ms[hs[-1]] - t.ts_ms[hs[0]]
        assert e["era_end"] is any(h in t.era_end for h in hs)
        _close(e["intervals"], _stats(iv.get(era, [])))
        assert e["faults"] == t.faults.get(era, 0)
        if era in t.weights:
            assert {NAME[v["validator"]]: int(v["weight"]) for v in e["validators"]} == t.weights[era]
            assert int(e["total_weight"]) == sum(t.weights[era].values()) and e["weights_note"] is None
        else:
            assert e["validators"] is None and e["total_weight"] is None and "not stored" in e["weights_note"]
        if e["era_end"]:
            assert [NAME[v] for v in e["equivocators"]] == t.equivocators[era]
            assert e["equivocator_count"] == len(t.equivocators[era])
        else:
            assert e["equivocators"] is None
    assert got[1]["missing_heights"] == 2


def test_proposer_share_against_weight_with_a_binomial_z(filled: tuple[DuckDBStore, int, Truth]) -> None:
    store, run_id, t = filled
    heights = _seen_heights(t)
    got = proposers(store, run_id, WHOLE)
    window_k: dict[str, float] = {}
    window_e: dict[str, float] = {}
    window_v: dict[str, float] = {}
    for e in got["eras"]:
        era = e["era_id"]
        hs = [h for h in heights if t.era[h] == era]
        k = {name: sum(1 for h in hs if t.proposer[h] == name) for name in VALIDATORS}
        rows = {NAME[r["validator"]]: r for r in e["validators"]}
        assert e["blocks"] == len(hs)
        if era not in t.weights:
            assert not e["weights_known"] and "not stored" in e["weights_note"]
            assert all(r["weight"] is None and r["z"] is None for r in rows.values())
            assert set(rows) == {n for n, c in k.items() if c}
            continue
        w = t.weights[era]
        assert set(rows) == set(w)  # a validator with weight that proposed nothing is listed
        total = sum(w.values())
        for name, r in rows.items():
            p, n = w[name] / total, len(hs)
            z = (k[name] - n * p) / math.sqrt(n * p * (1 - p))
            assert r["proposed"] == k[name]
            assert r["weight_share"] == pytest.approx(p) and r["proposed_share"] == pytest.approx(k[name] / n)
            assert r["difference"] == pytest.approx(k[name] / n - p)
            assert r["z"] == pytest.approx(z) and r["p_value"] == pytest.approx(math.erfc(abs(z) / math.sqrt(2)))
            window_k[name] = window_k.get(name, 0) + k[name]
            window_e[name] = window_e.get(name, 0) + n * p
            window_v[name] = window_v.get(name, 0) + n * p * (1 - p)
    overall = got["overall"]
    assert overall["blocks_without_weights"] == sum(1 for h in heights if t.era[h] not in t.weights)
    assert overall["blocks"] == sum(1 for h in heights if t.era[h] in t.weights)
    for r in overall["validators"]:
        name = NAME[r["validator"]]
        assert r["proposed"] == window_k[name] and r["expected"] == pytest.approx(window_e[name])
        assert r["z"] == pytest.approx((window_k[name] - window_e[name]) / math.sqrt(window_v[name]))


def _sig_expectations(t: Truth) -> tuple[dict[tuple[str, str], dict[str, Any]], dict[str, dict[str, Any]]]:
    per_node: dict[tuple[str, str], dict[str, Any]] = {}
    heights = _seen_heights(t)
    for name in VALIDATORS:
        for node in NODES:
            delays, unseen = [], 0
            due = missing = 0
            for h in heights:
                got = t.sig_seen.get((node, h, name))
                seen = t.block_seen.get((node, h))
                if got is not None:
                    if seen is None:
                        unseen += 1
                    else:
                        delays.append((got - seen) / 1e6)
                if seen is not None and t.era[h] in t.weights:
                    due += 1
                    missing += got is None
            per_node[(name, node)] = {"signatures": len(delays) + unseen, "before_block": sum(d < 0 for d in delays),
                                      "block_not_seen": unseen, "delay": _stats(delays), "due": due,
                                      "missing": missing}  # fmt: skip
    overall: dict[str, dict[str, Any]] = {}
    for name in VALIDATORS:
        delays = []
        due = missing = 0
        for h in heights:
            receipts = [t.sig_seen[(n, h, name)] for n in NODES if (n, h, name) in t.sig_seen]
            first_block = min(t.block_seen[(n, h)] for n in NODES if (n, h) in t.block_seen)
            if receipts:
                delays.append((min(receipts) - first_block) / 1e6)
            if t.era[h] in t.weights:
                due += 1
                missing += not receipts
        overall[name] = {"signatures": len(delays), "before_block": sum(d < 0 for d in delays), "block_not_seen": 0,
                         "delay": _stats(delays), "due": due, "missing": missing}  # fmt: skip
    return per_node, overall


def test_signature_arrival_per_validator_and_node(filled: tuple[DuckDBStore, int, Truth]) -> None:
    store, run_id, t = filled
    want_node, want_all = _sig_expectations(t)
    got = signatures(store, run_id, WHOLE)
    heights = _seen_heights(t)
    assert got["blocks"] == len(heights)
    assert got["blocks_without_weights"] == sum(1 for h in heights if t.era[h] not in t.weights)
    assert {n["node"]: n["blocks_seen"] for n in got["nodes"]} == {
        node: sum(1 for (n, _) in t.block_seen if n == node) for node in NODES}
    rows = {(NAME[r["validator"]], r["node"]): r for r in got["per_node"]}
    assert set(rows) == set(want_node)
    for key, want in want_node.items():
        r = rows[key]
        for field in ("signatures", "before_block", "block_not_seen", "due", "missing"):
            assert r[field] == want[field], (key, field)
        _close(r["delay"], want["delay"])
    assert sum(r["before_block"] for r in got["per_node"]) > 0  # the scenario has early signatures
    assert rows[("A", "n2:9999")]["block_not_seen"] > 0  # n2's lost connection
    overall = {NAME[r["validator"]]: r for r in got["validators"]}
    for name, want in want_all.items():
        r = overall[name]
        assert r["node"] is None
        for field in ("signatures", "before_block", "due", "missing"):
            assert r[field] == want[field], (name, field)
        _close(r["delay"], want["delay"])
    assert overall["D"]["missing"] > overall["A"]["missing"]  # D skipped half of era 2


def test_deploy_latency_failures_and_expiry(filled: tuple[DuckDBStore, int, Truth]) -> None:
    store, run_id, t = filled
    got = deploys(store, run_id, WHOLE, by_account=True)
    processed = {h: d for h, d in t.deploys.items() if d[3] is not None}
    inclusion = [float(t.ts_ms[d[3]] - d[1]) for d in processed.values() if d[3] is not None]
    receipt = [(d[4] - d[2]) / 1e6 for d in processed.values() if d[2] is not None and d[4] is not None]
    assert got["accepted"] == sum(1 for d in t.deploys.values() if d[2] is not None)
    assert got["processed"] == len(processed)
    assert got["failed"] == sum(1 for d in processed.values() if not d[5])
    assert got["failure_rate"] == pytest.approx(got["failed"] / len(processed))
    assert got["expired"] == len(t.expired) and got["pending"] == 1
    assert got["processed_without_accepted"] == 1 and got["block_not_stored"] == 0
    _close(got["inclusion"], _stats(inclusion))
    _close(got["receipt"], _stats(receipt))
    assert got["errors"] == [{"error_message": "out of gas", "count": got["failed"]}]
    accounts = {a["account"]: a for a in got["accounts"]}
    for account in {d[0] for d in t.deploys.values()}:
        mine = [d for d in processed.values() if d[0] == account]
        _close(accounts[account]["inclusion"], _stats([float(t.ts_ms[d[3]] - d[1]) for d in mine if d[3]]))


def test_answers_on_the_real_payloads_as_stored(store: DuckDBStore) -> None:
    """The docs' and the sidecar's own payloads, stored as they are: two blocks of two eras, no interval."""
    from tests.families.casper.test_store import _node_stream, _payloads

    payloads = _payloads()
    run = store.get_or_create_run("net:c", "casper")
    CasperStore(store, run.id).write(_node_stream("n1:9999", payloads, list(range(len(payloads)))))
    got = block_times(store, run.id, WHOLE)
    assert got["blocks"] == 2 and got["intervals"]["count"] == 0 and got["intervals"]["p50_ms"] is None
    legacy = json.loads(payloads[6])["BlockAdded"]["block"]["header"]
    by_era = {e["era_id"]: e for e in eras(store, run.id, WHOLE)}
    end = by_era[legacy["era_id"]]
    assert end["era_end"] and end["equivocators"] == legacy["era_end"]["era_report"]["equivocators"]
    assert end["inactive_validator_count"] == len(legacy["era_end"]["era_report"]["inactive_validators"])
    assert all(e["validators"] is None for e in by_era.values())  # weights are for the era after
    prop = proposers(store, run.id, WHOLE)
    assert all(not e["weights_known"] for e in prop["eras"]) and prop["overall"]["blocks_without_weights"] == 2
    d = deploys(store, run.id, WHOLE)
    assert d["processed"] == 1 and d["failed"] == 1 and d["block_not_stored"] == 1
    assert d["inclusion"]["count"] == 0
