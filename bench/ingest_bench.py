"""Ingest throughput and peak memory, next to the raw read speed of the same files.

Two workloads:

* ``json``: a simulated N-node CometBFT 1.x JSON debug log set of about ``--target-mb`` MB
  (``bftscope simulate``), ingested end to end (parse, normalize, store, derive).
* ``wal``: the real consensus WALs of ``../shared/data/cometbft/tendermint-v0.34-4node-wal``, each
  repeated ``--wal-copies`` times into one file per node (real records, more of them).

For each, the raw read speed (read the files and split lines / walk frames, nothing else) is
measured first, so the ratio shows how close the pipeline runs to that limit. Peak memory is the
largest sum of resident set sizes of the ingest process and its parser processes, sampled every
20 ms. Every figure is the median of ``--runs`` runs.

    .venv/bin/python bench/ingest_bench.py --workload json --target-mb 1000 --nodes 16 --runs 3
    .venv/bin/python bench/ingest_bench.py --workload wal --wal-copies 60 --runs 3
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import threading
import time
from pathlib import Path

from bftscope.config import Settings
from bftscope.ingest.pipeline import ingest
from bftscope.store import DuckDBStore

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"


_PAGE = os.sysconf("SC_PAGE_SIZE")


def _children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as fh:
                out.extend(int(c) for c in fh.read().split())
    except OSError:
        pass
    return out


def _rss_tree(pid: int) -> int:
    """Resident bytes of a process and all its descendants (Linux /proc).

    Walks the tree through ``/proc/PID/task/TID/children``: a few file reads per sample, so the
    sampler itself takes well under 1% of a core (listing all of /proc took ~7% of one).
    """
    total = 0
    stack = [pid]
    while stack:
        p = stack.pop()
        try:
            with open(f"/proc/{p}/statm") as fh:
                total += int(fh.read().split()[1]) * _PAGE
        except OSError:
            continue
        stack.extend(_children(p))
    return total


class PeakRss:
    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss_tree(os.getpid()))
            time.sleep(0.02)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def raw_read_lines(files: list[Path]) -> float:
    """Seconds to read the files in 4 MiB chunks and split them into lines."""
    t = time.perf_counter()
    n = 0
    for f in files:
        with f.open("rb") as fh:
            rest = b""
            while chunk := fh.read(4 * 1024 * 1024):
                lines = (rest + chunk).split(b"\n")
                rest = lines.pop()
                n += len(lines)
    return time.perf_counter() - t


def raw_walk_frames(files: list[Path]) -> tuple[float, int]:
    """Seconds to read the WAL files and walk their frames (no CRC, no decoding), and the frame count."""
    t = time.perf_counter()
    frames = 0
    for f in files:
        data = f.read_bytes()
        pos = 0
        while pos + 8 <= len(data):
            pos += 8 + int.from_bytes(data[pos + 4 : pos + 8], "big")
            frames += 1
    return time.perf_counter() - t, frames


def make_json_logs(target_mb: int, nodes: int) -> Path:
    folder = OUT / f"sim-{nodes}n-{target_mb}mb"
    marker = folder / "ground_truth.json"
    if marker.exists():
        return folder
    from bftscope.families.cometbft.synthetic.network import build_config, simulate

    shutil.rmtree(folder, ignore_errors=True)
    cfg = build_config(nodes=nodes, heights=10, seed=42, base_latency_ms=30.0, spread_ms=120.0, slow_node=None,
                       silent=[], drop_rate=0.0, escalations=[], target_bytes=target_mb * 1_000_000)  # fmt: skip
    t = time.perf_counter()
    simulate(cfg, folder)
    size = sum(p.stat().st_size for p in folder.glob("*.log"))
    print(f"generated {size / 1e6:.0f} MB in {time.perf_counter() - t:.1f} s into {folder}")
    return folder


def make_wals(copies: int, data: Path) -> Path:
    folder = OUT / f"wal-x{copies}"
    if folder.exists():
        return folder
    for i in range(4):
        home = folder / f"node{i}"
        src = data / f"node{i}"
        (home / "data" / "cs.wal").mkdir(parents=True)
        shutil.copytree(src / "config", home / "config")
        shutil.copy(src / "tendermint.log", home / "tendermint.log")
        blob = (src / "data" / "cs.wal" / "wal").read_bytes()
        (home / "data" / "cs.wal" / "wal").write_bytes(blob * copies)
    return folder


def run_ingest(paths: list[Path], workers: int) -> tuple[float, int, int, dict[str, int], int, dict[str, float]]:
    with tempfile.TemporaryDirectory(prefix="bftscope-bench-") as tmp:
        settings = Settings(data_dir=Path(tmp))
        store = DuckDBStore.open(settings.store_path, settings)
        with PeakRss() as rss:
            t = time.perf_counter()
            result = ingest(store, "bench", paths, settings, workers=workers)
            seconds = time.perf_counter() - t
        store.close()
        lines = sum(f.report.lines for f in result.files)
        return seconds, result.events, lines, result.derived, rss.peak, result.phases


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workload", choices=["json", "wal"], required=True)
    ap.add_argument("--target-mb", type=int, default=1000)
    ap.add_argument("--nodes", type=int, default=16)
    ap.add_argument("--wal-copies", type=int, default=60)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--data", type=Path, default=HERE.parent.parent / "shared" / "data" / "cometbft"
                    / "tendermint-v0.34-4node-wal")  # fmt: skip
    args = ap.parse_args()
    OUT.mkdir(exist_ok=True)
    if args.workload == "json":
        folder = make_json_logs(args.target_mb, args.nodes)
        files = sorted(folder.glob("*.log"))
    else:
        folder = make_wals(args.wal_copies, args.data)
        files = sorted(folder.glob("node*/data/cs.wal/wal"))
    size = sum(f.stat().st_size for f in files)
    raw = []
    frames = 0
    for _ in range(args.runs):
        if args.workload == "json":
            raw.append(raw_read_lines(files))
        else:
            secs, frames = raw_walk_frames(files)
            raw.append(secs)
    results = [run_ingest([folder], args.workers) for _ in range(args.runs)]
    secs = statistics.median(r[0] for r in results)
    peak = statistics.median(r[4] for r in results)
    # The "parse, normalize, store" is the first phase; derived tables and rollups (analytics
    # precomputed after every ingest) are reported beside it and included in the end-to-end figure.
    parse_store = statistics.median(r[5]["parse_store"] for r in results)
    out = {
        "workload": args.workload,
        "input_mb": round(size / 1e6, 1),
        "files": len(files),
        "runs": args.runs,
        "workers": args.workers,
        "raw_read_mb_s": round(size / 1e6 / statistics.median(raw), 1),
        "ingest_seconds_median": round(secs, 2),
        "ingest_mb_s": round(size / 1e6 / secs, 1),
        "parse_store_seconds_median": round(parse_store, 2),
        "parse_store_mb_s": round(size / 1e6 / parse_store, 1),
        "derive_seconds_median": round(statistics.median(r[5].get("derive", 0.0) for r in results), 2),
        "rollups_seconds_median": round(statistics.median(r[5].get("rollups", 0.0) for r in results), 2),
        "events": results[0][1],
        "lines_or_records": results[0][2],
        "records_per_s": round(results[0][2] / secs),
        "derived": results[0][3],
        "peak_rss_mib_median": round(peak / 2**20),
        "all_seconds": [round(r[0], 2) for r in results],
        "all_parse_store_seconds": [round(r[5]["parse_store"], 2) for r in results],
    }
    if args.workload == "wal":
        out["raw_frames_per_s"] = round(frames / statistics.median(raw))
    print(json.dumps(out, indent=2))
    (OUT / f"result-{args.workload}.json").write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
