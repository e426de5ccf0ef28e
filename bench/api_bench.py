"""HTTP API benchmark on loopback: metric endpoints under load, a 10 000-event page, and a 1 GB upload.

Uses the ~12-million-event run that ``bench/metrics_bench.py`` builds (run that first), copied into a
fresh API store as one simulation; starts ``bftscope serve`` (one uvicorn worker, token auth, rate limit
off so the load generator is not throttled) and drives it with ``wrk`` (Debian package ``wrk``):

    .venv/bin/python bench/metrics_bench.py --target-mb 3000 --calls 5
    .venv/bin/python bench/api_bench.py --seconds 10 --runs 3

Reports, per metric endpoint, requests/s and p99 latency (median of ``--runs`` wrk runs of ``--seconds``
each, 16 connections, ``Accept-Encoding: gzip`` as browsers send), the median time of a 10 000-event
``/events`` page, and the MB/s and server peak
RSS of a streamed 1 GB multipart upload. Results go to ``bench/out/api.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from bftscope.config import Settings
from bftscope.control import projects, simulations, users
from bftscope.families.cometbft.analytics import rollups
from bftscope.store import DuckDBStore

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
PORT = 8765
ROUTES = ["metrics/latency/votes", "metrics/latency/pairwise", "metrics/latency/timeseries", "metrics/latency/stats",
          "metrics/messages/success_rate", "metrics/latency/end_to_end", "metrics/vote/statistics",
          "metrics/network/latency/stats", "metrics/network/latency/node-stats", "metrics/network/latency/overview",
          "analytics/vote-matrix", "analytics/participation", "analytics/timeline", "summary"]  # fmt: skip


def prepare(source: Path, data: Path) -> tuple[str, str, str]:
    """A fresh API store holding the big run as a simulation, and an empty simulation to upload into;
    returns (token, big simulation id, upload simulation id)."""
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(parents=True)
    shutil.copy(source / "bftscope.duckdb", data / "bftscope.duckdb")
    settings = Settings(data_dir=data)
    store = DuckDBStore.open(settings.store_path, settings)
    user, token = users.create_user(store, "bench", "bench@corp.io")
    project = projects.create_project(store, user.id, "bench")
    sim = simulations.create_simulation(store, project.id, user.id, "12M events")
    store.execute("UPDATE runs SET name = ? WHERE name = 'big'", [sim.run_name])
    rollups.refresh(store, store.get_run(sim.run_name).id)  # rollups added since the store was built
    simulations.set_state(store, sim.id, status="processed", processing_status="completed")
    target = simulations.create_simulation(store, project.id, user.id, "uploads")
    store.close()
    return token, sim.id, target.id


def wrk(url: str, token: str, seconds: int) -> tuple[float, float]:
    # browsers and HTTP libraries send Accept-Encoding: gzip; large answers are then served pre-compressed
    cmd = ["wrk", "-t2", "-c16", f"-d{seconds}s", "--latency", "-H", f"Authorization: Bearer {token}",
           "-H", "Accept-Encoding: gzip", url]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    m = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    assert m, out
    p99 = float(m.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[m.group(2)]
    if re.search(r"Non-2xx or 3xx responses", out):
        raise RuntimeError(f"errors under load:\n{out}")
    return rps, p99


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def upload(base: str, token: str, sim: str, size_mb: int) -> float:
    boundary = "benchboundary1234567890"
    line = b"this is not a log line, only bytes to move over HTTP ................................\n"
    chunk = line * (65536 // len(line))

    def body() -> Iterator[bytes]:
        yield (f"--{boundary}\r\nContent-Disposition: form-data; name=\"logfiles\"; filename=\"big.log\"\r\n"
               f"Content-Type: application/octet-stream\r\n\r\n").encode()  # fmt: skip
        sent = 0
        while sent < size_mb * 1_000_000:
            yield chunk
            sent += len(chunk)
        yield f"\r\n--{boundary}--\r\n".encode()

    headers = {"Authorization": f"Bearer {token}", "Content-Type": f"multipart/form-data; boundary={boundary}"}
    t = time.perf_counter()
    r = httpx.post(f"{base}/v1/simulations/{sim}/upload", content=body(), headers=headers, timeout=600)
    seconds = time.perf_counter() - t
    r.raise_for_status()
    return size_mb / seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", type=Path, default=OUT / "metrics-16n-3000mb")
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--upload-mb", type=int, default=1000)
    ap.add_argument("--routes", nargs="*", default=ROUTES, help="only these metric routes (default: all)")
    ap.add_argument("--only-routes", action="store_true", help="skip the events page and the upload")
    args = ap.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is needed: apt-get install -y wrk")
    data = OUT / "api-store"
    token, sim, target = prepare(args.source, data)
    env = {**os.environ, "BFTSCOPE_DATA_DIR": str(data), "BFTSCOPE_RATE_LIMIT_ENABLED": "false",
           "BFTSCOPE_MAX_UPLOAD_FILE_BYTES": str(4 * 1024**3)}  # fmt: skip
    server = subprocess.Popen([sys.executable, "-m", "bftscope.cli", "serve", "--port", str(PORT)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    base = f"http://127.0.0.1:{PORT}"
    try:
        for _ in range(100):
            try:
                if httpx.get(f"{base}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        h = {"Authorization": f"Bearer {token}"}
        results: dict[str, dict[str, float]] = {}
        for route in args.routes:
            url = f"{base}/v1/simulations/{sim}/{route}"
            httpx.get(url, headers=h, timeout=60).raise_for_status()  # warm: first read of the rollup
            runs = [wrk(url, token, args.seconds) for _ in range(args.runs)]
            results[route] = {"rps": round(statistics.median(r[0] for r in runs)),
                              "p99_ms": round(statistics.median(r[1] for r in runs), 1)}  # fmt: skip
            print(f"{route:40s} {results[route]['rps']:6d} req/s   p99 {results[route]['p99_ms']:7.1f} ms", flush=True)
        if args.only_routes:
            return
        times = []
        cursor = None
        for _ in range(max(5, args.runs)):
            q = f"{base}/v1/simulations/{sim}/events?limit=10000" + (f"&cursor={cursor}" if cursor else "")
            t = time.perf_counter()
            r = httpx.get(q, headers=h, timeout=60)
            times.append((time.perf_counter() - t) * 1000)  # the response is in; decoding it is the client's time
            page = r.json()
            assert len(page["data"]) == 10000
            cursor = page["pagination"]["nextCursor"]
        events_ms = statistics.median(times)
        print(f"/events page of 10 000: median {events_ms:.0f} ms", flush=True)
        rss_before = peak_rss_mib(server.pid)
        speeds = []
        for _ in range(args.runs):
            speeds.append(upload(base, token, target, args.upload_mb))
            while httpx.get(f"{base}/v1/simulations/{target}", headers=h).json()["processingStatus"] in (
                    "pending", "processing"):  # the upload starts processing; let it finish (it fails fast)
                time.sleep(0.5)
        rss_after = peak_rss_mib(server.pid)
        print(f"upload {args.upload_mb} MB: median {statistics.median(speeds):.0f} MB/s; server peak RSS "
              f"{rss_before:.0f} MiB before, {rss_after:.0f} MiB after", flush=True)  # fmt: skip
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=120)
    (OUT / "api.json").write_text(json.dumps({
        "routes": results, "events_page_10000_ms": round(events_ms), "upload_mb_s": round(statistics.median(speeds)),
        "upload_runs_mb_s": [round(s) for s in speeds], "server_peak_rss_mib": [round(rss_before), round(rss_after)],
        "seconds": args.seconds, "runs": args.runs,
    }, indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
