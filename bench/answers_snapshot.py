"""Every answer bftscope gives on the shared real data (and one simulated network), through the real CLI and
HTTP API only, so that two versions of the code can be compared answer by answer.

A restructuring that must not change behaviour (issue 11) is checked by running this against the version
before and the version after and comparing: ``--compare OTHER.json`` prints every answer that differs and
exits 1 when any does. Only the command line and HTTP are used — no imports of bftscope — so the script
runs unchanged against any version, whatever its module layout.

    .venv/bin/python bench/answers_snapshot.py --out /tmp/before.json
    (change the code)
    .venv/bin/python bench/answers_snapshot.py --out /tmp/after.json --compare /tmp/before.json

What is compared: ``summary``/``report --json`` of each run ingested by the CLI, and over HTTP (``serve
--local``, the same inputs uploaded as archives) every metric and analytics route and every ``/events``
page. Fields that name the moment or the store rather than the data (ids of users, projects and
simulations, creation times, processing times, store paths, phase timings) are left out.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
METRICS = ("latency/votes", "latency/pairwise", "latency/timeseries", "latency/stats", "messages/success_rate",
           "latency/end_to_end", "vote/statistics", "network/latency/stats", "network/latency/node-stats",
           "network/latency/overview")  # fmt: skip
ANALYTICS = ("summary", "analytics/vote-matrix", "analytics/links", "analytics/clock-skew", "analytics/clock-offsets",
             "analytics/timeline", "analytics/participation", "analytics/proposers", "analytics/node-ranking",
             "analytics/topology")  # fmt: skip
# Keys whose values name the moment, the store or the request rather than the data.
VOLATILE = {"seconds", "phases", "store", "createdAt", "updatedAt", "processedAt", "processingTime", "userId",
            "projectId", "simulationId", "filePath", "data_dir", "path"}  # fmt: skip


def _scrub(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _scrub(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    return value


def _run(cmd: list[str], env: dict[str, str]) -> str:
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr[-2000:]}")
    return done.stdout


def _inputs(data: Path, work: Path, bftscope: str, env: dict[str, str]) -> dict[str, list[Path]]:
    """name → the paths of one run: the real testnet, its WAL-only homes, the real JSON lines, a simulation."""
    testnet = data / "cometbft" / "tendermint-v0.34-4node-wal"
    walonly = work / "walonly"
    for node in sorted(p for p in testnet.iterdir() if p.is_dir()):
        for part in ("config", "data"):
            if (node / part).is_dir():
                shutil.copytree(node / part, walonly / node.name / part)
    for key in walonly.glob("*/config/node_key.json"):
        key.unlink()
    sim = work / "sim"
    _run([bftscope, "simulate", str(sim), "--nodes", "4", "--heights", "40", "--seed", "7", "--slow-node", "0",
          "--escalate", "20", "--silent", "3", "--clock-offset", "node1=+40"], env)  # fmt: skip
    return {
        "v034": [testnet],
        "v034-walonly": [walonly],
        "json-lines": [data / "cometbft" / "cometbft-1.x-json-debug-lines.jsonl"],
        "sim": [sim],
    }


def _cli_answers(bftscope: str, runs: dict[str, list[Path]], store: Path, env: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, paths in runs.items():
        _run([bftscope, "ingest", *map(str, paths), "--run", name, "--data-dir", str(store), "--json"], env)
        out[f"cli/{name}/summary"] = json.loads(_run([bftscope, "summary", name, "--data-dir", str(store), "--json"],
                                                     env))  # fmt: skip
        out[f"cli/{name}/report"] = json.loads(_run([bftscope, "report", name, "--data-dir", str(store), "--json"],
                                                    env))  # fmt: skip
    return out


def _tar_gz(folder: Path) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(folder, arcname=folder.name)
    return buf.getvalue()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _api_answers(bftscope: str, runs: dict[str, list[Path]], store: Path, env: dict[str, str]) -> dict[str, Any]:
    port = _free_port()
    server = subprocess.Popen([bftscope, "serve", "--local", "--host", "127.0.0.1", "--port", str(port),
                               "--data-dir", str(store)], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE)  # fmt: skip
    out: dict[str, Any] = {}
    try:
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, timeout=120) as c:
            for _ in range(300):
                try:
                    if c.get("/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.1)
            user = c.post("/v1/users", json={"username": "snap", "email": "snap@example.org"}).json()
            uid = user["id"]
            pid = c.post(f"/v1/users/{uid}/projects", json={"name": "snapshot"}).json()["id"]
            for name, paths in runs.items():
                files = []
                for p in paths:
                    if p.is_dir():
                        for node in sorted(q for q in p.iterdir() if q.is_dir()) or [p]:
                            files.append(("logfiles", (f"{node.name}.tar.gz", _tar_gz(node), "application/gzip")))
                        files += [("logfiles", (q.name, q.read_bytes(), "text/plain"))
                                  for q in sorted(p.iterdir()) if q.is_file()]  # fmt: skip
                    else:
                        files.append(("logfiles", (p.name, p.read_bytes(), "text/plain")))
                r = c.post(f"/v1/users/{uid}/projects/{pid}/simulations", data={"name": name}, files=files)
                r.raise_for_status()
                sid = r.json()["id"]
                for _ in range(1200):
                    sim = c.get(f"/v1/simulations/{sid}").json()
                    if sim["status"] not in ("processing", "pending"):
                        break
                    time.sleep(0.1)
                out[f"api/{name}/status"] = sim["status"]
                for route in METRICS + ANALYTICS:
                    r = c.get(f"/v1/simulations/{sid}/{'metrics/' if route in METRICS else ''}{route}")
                    out[f"api/{name}/{route}"] = [r.status_code, r.json()]
                events, cursor = [], None
                while True:
                    params: dict[str, Any] = {"limit": 5000, **({"cursor": cursor} if cursor else {})}
                    r = c.get(f"/v1/simulations/{sid}/events", params=params)
                    page = r.json()
                    events += page["data"]
                    if not page["pagination"]["hasNext"]:
                        break
                    cursor = page["pagination"]["nextCursor"]
                out[f"api/{name}/events"] = events
    finally:
        server.terminate()
        server.wait(timeout=30)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True, help="Write the answers here (JSON).")
    ap.add_argument("--compare", type=Path, help="An earlier --out file: list what differs, exit 1 if anything.")
    ap.add_argument("--bftscope", default=str(ROOT / ".venv" / "bin" / "bftscope"), help="The CLI to run.")
    ap.add_argument("--data", type=Path,
                    default=Path(os.environ.get("BFTSCOPE_TEST_DATA", ROOT.parent / "shared" / "data")))  # fmt: skip
    args = ap.parse_args()
    env = {**os.environ, "BFTSCOPE_INGEST_WORKERS": "1"}
    with tempfile.TemporaryDirectory(prefix="bftscope-snap-") as tmp:
        work = Path(tmp)
        env["HOME"] = str(work / "home")
        runs = _inputs(args.data, work, args.bftscope, env)
        answers = {**_cli_answers(args.bftscope, runs, work / "cli", env),
                   **_api_answers(args.bftscope, runs, work / "api", env)}  # fmt: skip
    answers = _scrub(answers)
    text = json.dumps(answers, sort_keys=True, indent=1)
    args.out.write_text(text)
    digests = {k: hashlib.sha256(json.dumps(v, sort_keys=True).encode()).hexdigest()[:16] for k, v in answers.items()}
    print(json.dumps({"answers": len(answers), "sha256": hashlib.sha256(text.encode()).hexdigest()}, indent=1))
    if args.compare:
        before = json.loads(args.compare.read_text())
        differ = sorted(k for k in set(before) | set(answers) if before.get(k) != answers.get(k))
        for k in differ:
            print(f"differs: {k} ({'missing' if k not in answers else 'new' if k not in before else digests[k]})")
        print(f"{len(answers) - len(differ)} of {len(set(before) | set(answers))} answers identical")
        sys.exit(1 if differ else 0)


if __name__ == "__main__":
    main()
