"""One process following many replayed CometBFT networks: receipt-to-query latency, vote rate and memory.

Starts ``--networks`` replay servers (``bftscope replay … --at-end loop``, each its own process, nodes of the
real v0.34 testnet in turn) at ``--speed``, then follows all of them from this one process, each network into
its own live run of one embedded store (:class:`~bftscope.families.cometbft.live.follower.NetworkFollower` with
the live :class:`~bftscope.ingest.livesink.StoreSink`, derived tables kept current as in production).

Every ``--sample`` seconds a query asks each run for the events added since the last look; each one's latency
is the query's time minus the event's ``ts`` (the monitor's clock when its frame was received), so it includes
decoding, batching, the store write and up to one sampling period of waiting — an upper bound. Memory is this
process's resident set, read every 10 s; "flat" means the last minute's median is within a few percent of the
second minute's. Latencies are counted in 1 ms bins (a list of every one grew this process by ~100 MiB in 10
minutes, which the memory figure then blamed on the follower).

Each minute's row also carries what other jobs on a shared machine distort little (``livecosts.py``): CPU
seconds of this process and of the replays, time in the family's derive and rollup steps, memory by component,
and with ``--report-writer-lock`` the store's writer lock held and waited for. Compare code versions with
interleaved runs of these, not with wall-clock latency alone.

    .venv/bin/python bench/live_follow_bench.py --networks 20 --speed 25 --seconds 600

Writes ``bench/out/live_follow.json``. The testnet is read from ``$BFTSCOPE_TEST_DATA`` (default ../shared/data).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Any

import httpx

from bftscope import runtime
from bftscope.config import Settings
from bftscope.families.cometbft.live.follower import NetworkFollower
from bftscope.families.cometbft.live.valsets import record_validator_set
from bftscope.ingest.livesink import StoreSink
from bftscope.store import open_store
from bftscope.store.base import Store

sys.path.insert(0, str(Path(__file__).resolve().parent))
import livecosts  # bench/livecosts.py, beside this script

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
_FLOOR_S = 60.0


def _data() -> Path:
    root = Path(os.environ.get("BFTSCOPE_TEST_DATA") or HERE.parent.parent / "shared" / "data")
    path = root / "cometbft" / "tendermint-v0.34-4node-wal"
    if not path.is_dir():
        sys.exit(f"the v0.34 testnet is not at {path} (set BFTSCOPE_TEST_DATA)")
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def _wait_up(url: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(timeout=2.0) as client:
        while time.monotonic() < deadline:
            try:
                if (await client.get(f"{url}/status")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.25)
    raise SystemExit(f"replay at {url} did not come up")


async def _sample(store: Store, runs: dict[str, int], last_id: dict[str, int]) -> tuple[list[float], int]:
    """The events added to any run since the last look, in one query (a query per run costs the process more
    than the writes it measures). Rows older than ``_FLOOR_S`` are not looked for: their latency would be past
    any target anyway, and the run's total counts them as not sampled (``unsampled`` in the result)."""
    now_ns = time.time_ns()
    cases = " ".join(f"WHEN {int(r)} THEN :after{int(r)}" for r in runs.values())
    rows = store.query(
        f"SELECT run_id, id, ts, kind FROM events WHERE ts >= :floor AND id > (CASE run_id {cases} ELSE 0 END)",
        {"floor": now_ns - int(_FLOOR_S * 1e9), **{f"after{int(r)}": last_id.get(n, 0) for n, r in runs.items()}},
    )
    names = {r: n for n, r in runs.items()}
    lat: list[float] = []
    votes = 0
    for run_id, id_, ts, kind in rows:
        name = names.get(int(run_id))
        if name is None:
            continue
        last_id[name] = max(last_id.get(name, 0), int(id_))
        if kind == "observation_gap":
            continue  # its ts is when the gap began, not a receipt
        lat.append((now_ns - int(ts)) / 1e9)
        votes += kind == "vote_added"
    return lat, votes


async def _main(args: argparse.Namespace) -> dict[str, Any]:
    testnet = _data()
    procs: list[subprocess.Popen[bytes]] = []
    urls: list[str] = []
    for i in range(args.networks):
        port = _free_port()
        cmd = [str(Path(sys.executable).parent / "bftscope"), "replay", str(testnet), "--node", f"node{i % 4}",
               "--listen", f"127.0.0.1:{port}", "--speed", str(args.speed), "--at-end", "loop"]  # fmt: skip
        procs.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        urls.append(f"http://127.0.0.1:{port}")
    tmp = tempfile.TemporaryDirectory(prefix="bftscope-live-bench-")
    extra: dict[str, Any] = {}
    if args.duckdb_memory_limit:
        extra["duckdb_memory_limit"] = args.duckdb_memory_limit
    if args.duckdb_threads:
        extra["duckdb_threads"] = args.duckdb_threads
    store = open_store(Settings(data_dir=Path(tmp.name), **extra))
    calls = livecosts.CallMeter()
    lock = None
    if args.report_writer_lock:  # the writer lock of the embedded store, measured in place
        lock = livecosts.LockMeter(store._lock, {threading.get_ident()})  # type: ignore[attr-defined]
        store._lock = lock  # type: ignore[attr-defined]
    statements = livecosts.StatementMeter(store) if args.report_statements else None
    if args.tracemalloc:
        tracemalloc.start(5)
    snapshot: Any = None
    objects = livecosts.object_counts() if args.count_objects else None
    sink_opts: dict[str, Any] = {} if args.rollups_every is None else {"rollups_every_s": args.rollups_every}
    try:
        await asyncio.gather(*(_wait_up(u) for u in urls))
        runs: dict[str, int] = {}
        followers: list[NetworkFollower] = []
        for i, url in enumerate(urls):
            name = f"net{i:02d}"
            run_id = store.get_or_create_run(name, "cometbft").id
            runs[name] = run_id
            followers.append(NetworkFollower(
                name, [url], StoreSink(store, name, "cometbft", **sink_opts), flush_interval=args.flush,
                on_validator_set=lambda h, vs, r=run_id: record_validator_set(store, r, h, vs),
            ))  # fmt: skip
        tasks = [asyncio.create_task(f.run()) for f in followers]
        started = time.monotonic()
        last_id: dict[str, int] = {}
        latencies = livecosts.Latencies()  # counts of 1 ms bins: the measuring adds no memory as it goes
        per_window: list[dict[str, Any]] = []
        rss: list[tuple[float, float]] = []
        votes = 0
        next_rss = started
        window_lat = livecosts.Latencies()
        sampled = 0
        window_votes, window_start = 0, started
        cpu0, replays0 = livecosts.process_cpu_s(), livecosts.children_cpu_s([p.pid for p in procs])
        with_rollups: list[float] = []
        while (elapsed := time.monotonic() - started) < args.seconds:
            await asyncio.sleep(args.sample)
            lat, v = await _sample(store, runs, last_id)
            sampled += len(lat)
            if elapsed >= args.warmup:
                latencies.add(lat)
                votes += v
            window_lat.add(lat)
            window_votes += v
            now = time.monotonic()
            if now >= next_rss:
                rss.append((round(now - started, 1), round(_rss_mib(), 1)))
                next_rss = now + 10.0
                (held,), *_ = store.query("SELECT count(DISTINCT run_id) FROM rollups")
                with_rollups.append(int(held) / len(urls))
            if now - window_start >= 60.0:
                cpu1, replays1 = livecosts.process_cpu_s(), livecosts.children_cpu_s([p.pid for p in procs])
                per_window.append({"t": round(now - started), "p50_s": window_lat.pct(0.5),
                                   "p99_s": window_lat.pct(0.99),
                                   "votes_per_s_per_network": window_votes / (now - window_start) / len(urls),
                                   "cpu_s": round(cpu1 - cpu0, 1), "replays_cpu_s": round(replays1 - replays0, 1),
                                   **calls.reset(), **(lock.reset() if lock is not None else {}),
                                   "rss_mib": round(_rss_mib(), 1),
                                   "duckdb_mib": livecosts.duckdb_memory_mib(store),
                                   "python_mib": livecosts.python_mib(), "malloc_mib": livecosts.malloc_mib(),
                                   "runs_with_rollups": round(statistics.fmean(with_rollups), 3)
                                   if with_rollups else None})  # fmt: skip
                cpu0, replays0, with_rollups = cpu1, replays1, []
                if objects is not None:
                    now_objects = livecosts.object_counts()
                    grown = (now_objects - objects).most_common(8)
                    print("objects grown", json.dumps(grown), flush=True)
                    objects = now_objects
                if args.tracemalloc:
                    if snapshot is not None:
                        for stat in tracemalloc.take_snapshot().compare_to(snapshot, "traceback")[:8]:
                            print("tracemalloc +", stat, *stat.traceback.format()[-6:], sep="\n  ", flush=True)
                    snapshot = tracemalloc.take_snapshot()
                print(json.dumps(per_window[-1]), flush=True)
                window_lat, window_votes, window_start = livecosts.Latencies(), 0, now
        if statements is not None:
            for row in statements.top():
                print("statement", json.dumps(row), flush=True)
        measured = max(args.seconds - args.warmup, 1e-9)
        for f in followers:
            await f.stop()
        await asyncio.gather(*tasks, return_exceptions=True)
        statuses = [f.status() for f in followers]
        (stored,), *_ = store.query("SELECT count(*) FILTER (WHERE kind <> 'observation_gap') FROM events")
        sampled_total = sampled
    finally:
        store.close()
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        tmp.cleanup()
    second_minute = [m for t, m in rss if 60 <= t < 120]
    last_minute = [m for t, m in rss if t >= args.seconds - 60]
    return {
        "networks": args.networks, "speed": args.speed, "flush_s": args.flush, "seconds": args.seconds,
        "warmup_s": args.warmup,
        "events_measured": latencies.n, "events_stored": int(stored),
        "unsampled": int(stored) - sampled_total,  # stored but never seen by a sample (older than the floor)
        "votes_per_s_per_network": votes / measured / args.networks,
        "latency_s": {"p50": latencies.pct(0.5), "p99": latencies.pct(0.99), "max": latencies.max or None},
        "rss_mib": rss,
        "rss_second_minute_median": statistics.median(second_minute) if second_minute else None,
        "rss_last_minute_median": statistics.median(last_minute) if last_minute else None,
        "gaps": sum(s.gaps for s in statuses), "duplicates_dropped": sum(s.duplicates for s in statuses),
        "write_errors": sum(s.write_errors for s in statuses),
        "reconnects": sum(e.reconnects for s in statuses for e in s.endpoints),
        "per_minute": per_window,
    }  # fmt: skip


def main() -> None:
    runtime.apply()  # as `bftscope serve` and `bftscope watch` do (bftscope/runtime.py: the GIL switch interval)
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--networks", type=int, default=20)
    ap.add_argument("--speed", type=float, default=25.0, help="replay speed (25: about 100 votes/s per network)")
    ap.add_argument("--seconds", type=float, default=600.0)
    ap.add_argument("--warmup", type=float, default=15.0, help="seconds left out of the figures at the start")
    ap.add_argument("--sample", type=float, default=0.25, help="seconds between visibility queries")
    ap.add_argument("--flush", type=float, default=0.25, help="the followers' flush interval (seconds)")
    ap.add_argument("--report-writer-lock", action="store_true",
                    help="per minute: the store's writer lock held (total, longest), the event loop's waits for it")
    ap.add_argument("--report-statements", action="store_true", help="at the end: the writer's costliest statements")
    ap.add_argument("--count-objects", action="store_true", help="per minute: the Python types that grew most")
    ap.add_argument("--tracemalloc", action="store_true", help="per minute: Python's traced memory (slows it)")
    ap.add_argument("--rollups-every", type=float, default=None,
                    help="the sinks' rollups_every_s (default: StoreSink's)")
    ap.add_argument("--duckdb-memory-limit", default=None, help="the store's memory_limit (default: Settings')")
    ap.add_argument("--duckdb-threads", type=int, default=0, help="the store's threads (default: DuckDB's)")
    ap.add_argument("--out", default=str(OUT / "live_follow.json"), help="where the result goes")
    args = ap.parse_args()
    result = asyncio.run(_main(args))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps({k: v for k, v in result.items() if k not in ("rss_mib", "per_minute")}, indent=2))


if __name__ == "__main__":
    main()
