"""The Casper answers on the multi-node synthetic network (``families/casper/synthetic.py``): three nodes
sending one chain in their own orders, with repeats, both shapes of era-end weights. Each node's events are
received at known times (node ``k``'s ``i``-th event at ``base_k + i`` ms); every expected figure is computed
here from the generated payloads with ``json`` and NumPy."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import numpy as np
import pytest

from bftscope.config import Settings
from bftscope.families.casper.analytics.blocktimes import block_times
from bftscope.families.casper.analytics.eras import eras
from bftscope.families.casper.analytics.proposers import proposers
from bftscope.families.casper.analytics.signatures import signatures
from bftscope.families.casper.analytics.window import WHOLE
from bftscope.families.casper.decoder import CasperDecoder
from bftscope.families.casper.store import CasperStore
from bftscope.sources.base import Frame
from bftscope.store.duckdb import DuckDBStore

# the generator lands with the follower (branch casper-follow); until then this module is skipped
synthetic = pytest.importorskip("bftscope.families.casper.synthetic")

BASE_NS = [1_709_251_200_000_000_000 + k * 7_000_000 for k in range(3)]


@pytest.fixture
def stored(settings: Settings) -> Iterator[tuple[DuckDBStore, int, Any]]:
    synth = synthetic.generate(3_000, nodes=3, seed=5, validators=6, era_blocks=8)
    store = DuckDBStore.open(settings.store_path, settings)
    run_id = store.get_or_create_run("net:synth", "casper").id
    cs = CasperStore(store, run_id)
    for k, stream in enumerate(synth.streams):
        batch = []
        for i, payload in enumerate(stream):
            dec = CasperDecoder(f"node{k}:9999", "events", clock=lambda k=k, i=i: BASE_NS[k] + i * 1_000_000)
            batch.extend(dec.feed(Frame(payload, id=str((synth.first_ids[k] + i) % 2**32))))
            assert not dec.report.skipped
        cs.write(batch)
    yield store, run_id, synth
    store.close()


def _stats(xs: list[float]) -> tuple[int, float, float, float]:
    a = np.asarray(xs, dtype=float)
    return len(a), float(np.percentile(a, 50)), float(np.percentile(a, 90)), float(np.percentile(a, 99))


def _blocks(synth: Any) -> dict[str, dict[str, Any]]:
    out = {}
    for p in synth.streams[0]:
        doc = json.loads(p)
        if isinstance(doc, dict) and "BlockAdded" in doc:
            out[doc["BlockAdded"]["block_hash"]] = doc["BlockAdded"]["block"]
    return out


def _ms(ts: str) -> int:
    return int(datetime.fromisoformat(ts).timestamp() * 1000)


def test_block_times_eras_and_both_weight_shapes(stored: tuple[DuckDBStore, int, Any]) -> None:
    store, run_id, synth = stored
    blocks = {b["header"]["height"]: b for b in _blocks(synth).values()}
    ts = {h: _ms(b["header"]["timestamp"]) for h, b in blocks.items()}
    iv = [float(ts[h] - ts[h - 1]) for h in sorted(ts) if h - 1 in ts]
    got = block_times(store, run_id, WHOLE)["intervals"]
    assert (got["count"], got["p50_ms"], got["p90_ms"], got["p99_ms"]) == pytest.approx(_stats(iv))
    weights: dict[int, dict[str, int]] = {}
    for b in blocks.values():
        end = b["header"]["era_end"]
        if end:
            w = end["next_era_validator_weights"]
            pairs = w.items() if isinstance(w, dict) else ((x["validator"], x["weight"]) for x in w)
            weights[b["header"]["era_id"] + 1] = {v: int(x) for v, x in pairs}
    assert any(e % 2 == 1 for e in weights) and any(e % 2 == 0 for e in weights)  # both shapes were written
    for e in eras(store, run_id, WHOLE):
        mine = [b for b in blocks.values() if b["header"]["era_id"] == e["era_id"]]
        assert e["blocks"] == len(mine) and e["era_end"] is any(b["header"]["era_end"] for b in mine)
        held = None if e["validators"] is None else {v["validator"]: int(v["weight"]) for v in e["validators"]}
        assert held == weights.get(e["era_id"])


def test_proposer_counts_and_signature_delays_per_node(stored: tuple[DuckDBStore, int, Any]) -> None:
    store, run_id, synth = stored
    blocks = _blocks(synth)
    got = proposers(store, run_id, WHOLE)
    for era in got["eras"]:
        mine = [b for b in blocks.values() if b["header"]["era_id"] == era["era_id"]]
        counts: dict[str, int] = {}
        for b in mine:
            counts[b["body"]["proposer"]] = counts.get(b["body"]["proposer"], 0) + 1
        assert {r["validator"]: r["proposed"] for r in era["validators"] if r["proposed"]} == counts
    # per node: first sight of each block, first receipt of each signature, from the known receipt times
    delays: dict[tuple[str, str], list[float]] = {}
    for k, stream in enumerate(synth.streams):
        seen: dict[str, int] = {}
        sigs: dict[tuple[str, str], int] = {}
        for i, p in enumerate(stream):
            doc, t = json.loads(p), BASE_NS[k] + i * 1_000_000
            if isinstance(doc, dict) and "BlockAdded" in doc:
                seen.setdefault(doc["BlockAdded"]["block_hash"], t)
            elif isinstance(doc, dict) and "FinalitySignature" in doc:
                s = doc["FinalitySignature"]
                sigs.setdefault((s["block_hash"], s["public_key"]), t)
        for (block, v), t in sigs.items():
            delays.setdefault((v, f"node{k}:9999"), []).append((t - seen[block]) / 1e6)
    rows = {(r["validator"], r["node"]): r for r in signatures(store, run_id, WHOLE)["per_node"]}
    assert set(rows) == set(delays)
    for key, xs in delays.items():
        d = rows[key]["delay"]
        assert (d["count"], d["p50_ms"], d["p90_ms"], d["p99_ms"]) == pytest.approx(_stats(xs)), key
        assert rows[key]["before_block"] == sum(x < 0 for x in xs)
