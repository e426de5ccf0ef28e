"""Metric latency on a large run: every metric function, warm, median of repeated calls.

Builds (once, cached under ``bench/out/``) a run of about 12 million events by ingesting a simulated
16-node CometBFT JSON debug-log testnet of ``--target-mb`` MB, then calls every metric ``--calls`` times
after one warm-up call and reports the median and max wall time per metric. Also reports the cost of the
derived tables (rollups): the time of one ``derive.rebuild`` against the ingest time.

    .venv/bin/python bench/metrics_bench.py --target-mb 3000 --calls 7
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bftscope.config import Settings
from bftscope.families.cometbft.analytics import analyzer, derive, rollups
from bftscope.ingest.pipeline import ingest
from bftscope.store import DuckDBStore

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"


def build(target_mb: int, nodes: int) -> tuple[Path, dict[str, Any]]:
    from bftscope.families.cometbft.synthetic.network import build_config, simulate

    folder = OUT / f"sim-{nodes}n-{target_mb}mb"
    if not (folder / "ground_truth.json").exists():
        shutil.rmtree(folder, ignore_errors=True)
        cfg = build_config(nodes=nodes, heights=10, seed=42, base_latency_ms=30.0, spread_ms=120.0, slow_node=None,
                           silent=[], drop_rate=0.0, escalations=[], target_bytes=target_mb * 1_000_000)  # fmt: skip
        simulate(cfg, folder)
    data = OUT / f"metrics-{nodes}n-{target_mb}mb"
    info_file = data / "ingest.json"
    if not info_file.exists():
        shutil.rmtree(data, ignore_errors=True)
        settings = Settings(data_dir=data)
        store = DuckDBStore.open(settings.store_path, settings)
        t = time.perf_counter()
        result = ingest(store, "big", [folder], settings)
        info = {"ingest_s": time.perf_counter() - t, "events": result.events}
        # the derived tables and rollups once more on their own, to measure their share of the ingest
        rid = store.get_run("big").id
        t = time.perf_counter()
        derive.rebuild(store, rid)
        info["derive_s"] = time.perf_counter() - t
        t = time.perf_counter()
        rollups.refresh(store, rid)
        info["rollups_s"] = time.perf_counter() - t
        store.close()
        info_file.write_text(json.dumps(info))
    return data, json.loads(info_file.read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--target-mb", type=int, default=3000)
    ap.add_argument("--nodes", type=int, default=16)
    ap.add_argument("--calls", type=int, default=7)
    args = ap.parse_args()
    OUT.mkdir(exist_ok=True)
    data, info = build(args.target_mb, args.nodes)
    settings = Settings(data_dir=data)
    store = DuckDBStore.open(settings.store_path, settings, read_only=True)
    rid = store.get_run("big").id
    span = store.query("SELECT min(ts), max(ts) FROM events WHERE run_id = ?", [rid])[0]
    # a live (not rolled-up) window: the middle tenth of the run
    tenth = analyzer.Window(span[0] + 45 * (span[1] - span[0]) // 100, span[0] + 55 * (span[1] - span[0]) // 100)
    th = rollups.answer(store, rid, "vote_thresholds")["p95"]
    cases: dict[str, Callable[[], Any]] = {
        f"rollup {name}": (lambda name=name: rollups.answer_json(store, rid, name)) for name in rollups.METRICS
    }
    cases["votes page 1 (p95)"] = lambda: analyzer.vote_latencies(store, rid, threshold_ns=th)
    cases["votes page 50 (p95)"] = lambda: analyzer.vote_latencies(store, rid, page=50, threshold_ns=th)
    windowed = {"vote_thresholds", "pairwise", "vote_statistics", "timeseries", "latency_stats", "success_rate",
                "end_to_end", "network_pair_stats", "network_node_stats", "network_overview"}  # fmt: skip
    for name, fn in rollups.METRICS.items():
        label = "live, 10% window" if name in windowed else "live, whole run (no rollup)"
        cases[f"{label} {name}"] = lambda fn=fn: fn(store, rid, tenth)
    results = {}
    for name, fn in cases.items():
        fn()
        times = []
        for _ in range(args.calls):
            t = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t) * 1000)
        results[name] = {"median_ms": round(statistics.median(times), 1), "max_ms": round(max(times), 1)}
        print(f"{name:45s} median {results[name]['median_ms']:8.1f} ms   max {results[name]['max_ms']:8.1f} ms")
    store.close()
    out = {
        "events": info["events"], "ingest_s": round(info["ingest_s"], 1), "derive_s": round(info["derive_s"], 2),
        "rollups_s": round(info["rollups_s"], 2), "derive_share": round(info["derive_s"] / info["ingest_s"], 3),
        "rollups_share": round(info["rollups_s"] / info["ingest_s"], 3), "calls": args.calls, "metrics": results,
    }  # fmt: skip
    print(json.dumps({k: v for k, v in out.items() if k != "metrics"}))
    (OUT / "metrics.json").write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
