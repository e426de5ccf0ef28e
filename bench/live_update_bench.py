"""The cost of keeping a live run's analytics current: one new height's update against a full rebuild.

Simulates (once, cached under ``bench/out/``) a CometBFT network with ``bftscope simulate``, ingests it, and
writes its events as a live run through the live sink (:class:`bftscope.ingest.livesink.StoreSink`) except
the last ``--new-heights`` heights. Then, for each of those heights: its events are written and the run is
brought up to date the way the sink does it — the family's incremental derive from that height, then the
rollups — each part timed. Last, a full rebuild (derive + rollups) of the same run is timed, and the slowest
rollups are listed (the rollups are recomputed over the run's retained events on every update: see
docs/live.md "Live analytics"). Every figure is the median over the new heights (or ``--runs`` rebuilds).

    .venv/bin/python bench/live_update_bench.py --nodes 4 --heights 4000 --new-heights 5 --runs 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from bftscope.config import Settings
from bftscope.families import registry
from bftscope.families.cometbft.analytics import rollups
from bftscope.families.cometbft.analytics.analyzer import WHOLE_RUN
from bftscope.ingest import derived
from bftscope.ingest.livesink import StoreSink
from bftscope.ingest.pipeline import ingest
from bftscope.model import ROW_SCHEMA
from bftscope.store import DuckDBStore

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"


def _recorded(nodes: int, heights: int) -> tuple[DuckDBStore, int]:
    sim = OUT / f"live-sim-{nodes}n-{heights}h"
    if not (sim / "ground_truth.json").exists():
        bftscope = str(Path(sys.executable).with_name("bftscope"))
        subprocess.run([bftscope, "simulate", str(sim), "--nodes", str(nodes), "--heights", str(heights),
                        "--seed", "5", "--escalate", "7"], check=True, capture_output=True)  # fmt: skip
    settings = Settings(data_dir=OUT / f"live-store-{nodes}n-{heights}h")
    fresh = not settings.store_path.exists()
    store = DuckDBStore.open(settings.store_path, settings)
    if fresh:
        ingest(store, "recorded", [sim], settings)
    for run in store.list_runs():
        if run["name"] != "recorded":
            store.delete_run(int(run["id"]))
    return store, store.get_run("recorded").id


def _write(sink: StoreSink, events: pa.Table, labels: dict[int, str]) -> None:
    for node, label in labels.items():
        part = events.filter(pc.equal(events.column("node"), node)).drop_columns(["node"])
        if part.num_rows:
            sink.write(label, [part])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", type=int, default=4)
    ap.add_argument("--heights", type=int, default=4000)
    ap.add_argument("--new-heights", type=int, default=5)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    store, recorded = _recorded(args.nodes, args.heights)
    labels = {n.node: n.label for n in store.nodes(recorded)}
    cols = ", ".join(f.name for f in ROW_SCHEMA)
    events = store.query_arrow(f"SELECT node, {cols} FROM events WHERE run_id = ? AND kind <> 'node_restart'"
                               " ORDER BY ts, id", [recorded])  # fmt: skip
    top = pc.max(events.column("height")).as_py()
    first_new = top - args.new_heights + 1
    height = events.column("height")
    old = pc.or_(pc.is_null(height), pc.less(height, first_new))
    sink = StoreSink(store, "live", "cometbft", update_every_s=None)
    _write(sink, events.filter(old), labels)
    sink.update()  # the first update of a new run is a full build
    run_id = store.get_run("live").id
    family = registry.family("cometbft")
    derive_s, rollups_s, update_s = [], [], []
    for h in range(first_new, top + 1):
        _write(sink, events.filter(pc.equal(height, h)), labels)
        store.flush_events()
        t0 = time.perf_counter()
        family.derive_incremental(store, run_id, h)
        t1 = time.perf_counter()
        family.refresh_rollups(store, run_id)
        t2 = time.perf_counter()
        sink.update()  # what the sink runs, both together (derives the same height again)
        update_s.append(time.perf_counter() - t2)
        derive_s.append(t1 - t0)
        rollups_s.append(t2 - t1)
    full: list[dict[str, float]] = []
    for _ in range(args.runs):
        phases: dict[str, float] = {}
        derived.build(store, run_id, phases=phases)
        full.append(phases)
    per_metric = {}
    for name, metric in rollups.METRICS.items():
        t = time.perf_counter()
        metric(store, run_id, WHOLE_RUN)
        per_metric[name] = round(time.perf_counter() - t, 4)
    counts = {t: store.query(f"SELECT count(*) FROM {t} WHERE run_id = ?", [run_id])[0][0]
              for t in ("events", "vote_arrivals", "deliveries")}  # fmt: skip
    med = statistics.median
    result: dict[str, Any] = {
        "run": {"nodes": args.nodes, "heights": top, **counts},
        "one_height": {"derive_incremental_s": round(med(derive_s), 4), "rollups_s": round(med(rollups_s), 4),
                       "sink_update_s": round(med(update_s), 4)},
        "full_rebuild": {"derive_s": round(med(p["derive"] for p in full), 4),
                         "rollups_s": round(med(p["rollups"] for p in full), 4)},
        "slowest_rollups_s": dict(sorted(per_metric.items(), key=lambda kv: -kv[1])[:6]),
    }  # fmt: skip
    store.delete_run(run_id)
    store.close()
    OUT.mkdir(exist_ok=True)
    (OUT / "live_update_bench.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
