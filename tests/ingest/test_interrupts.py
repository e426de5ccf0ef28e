"""An ingest killed or interrupted at any moment: its parser processes go with it, the store keeps
exactly the sources it finished, and the run's derived tables are rebuilt when they are not current.

Each test drives the real command in a subprocess. A small driver (``_DRIVER``) runs ``bftscope``'s
CLI with one step of the ingest made to wait, so the test knows where the process is when it sends
the signal; nothing else is changed.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bftscope.cli import app

runner = CliRunner()

# argv: where to pause, then the CLI's arguments. Prints "paused at <where>" on stdout once it waits:
# "parse": at the third batch written; "parse-after-small": at the first batch written after a unit of
# fewer than 1,000 events (a small file) was completely parsed; "derive" / "rollups": as that phase starts.
_DRIVER = r"""
import sys, time
phase, args = sys.argv[1], sys.argv[2:]

def pause():
    print(f"paused at {phase}", flush=True)
    time.sleep(120)

if phase.startswith("parse"):
    from bftscope.ingest.parsereport import ParseReport
    from bftscope.store.duckdb import DuckDBStore
    append, merge, calls, files_done = DuckDBStore.append_events, ParseReport.merge, [], []
    def slow_append(self, *a, **k):
        calls.append(1)
        n = append(self, *a, **k)
        if (len(calls) == 3) if phase == "parse" else any(n < 1000 for n in files_done):
            pause()
        return n
    def merged(self, other):
        merge(self, other)
        files_done.append(other.events)
    DuckDBStore.append_events = slow_append
    ParseReport.merge = merged
elif phase in ("derive", "rollups"):
    from bftscope.families.cometbft.analytics import derive, rollups
    mod, name = (derive, "rebuild") if phase == "derive" else (rollups, "refresh")
    original = getattr(mod, name)
    def paused(*a, **k):
        pause()
        return original(*a, **k)
    setattr(mod, name, paused)
    import bftscope.ingest.pipeline as pipeline
    if phase == "derive" and hasattr(pipeline, "rebuild"):
        pipeline.rebuild = paused
from bftscope.cli import app
app(args)
"""


def _start(phase: str, *args: str, new_session: bool = False) -> subprocess.Popen[str]:
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-c", _DRIVER, phase, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env=env, start_new_session=new_session,
    )  # fmt: skip


def _wait_paused(proc: subprocess.Popen[str], phase: str) -> None:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if line.strip() != f"paused at {phase}":
        proc.kill()
        _, err = proc.communicate(timeout=30)
        pytest.fail(f"the ingest did not reach {phase}: {line!r} {err[-2000:]}")


def _workers_of(pid: int) -> list[int]:
    """Pids of the parser processes (multiprocessing spawn children) of ``pid``."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmd = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid and b"spawn_main" in cmd:
            out.append(int(entry.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _within(seconds: float, check: object) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return bool(check())  # type: ignore[operator]


@pytest.fixture(scope="module")
def big_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """~33 MB of real JSON lines: above the size at which the ingest starts its parser processes."""
    from tests.conftest import require_data

    lines = require_data("cometbft/cometbft-1.x-json-debug-lines.jsonl").read_bytes()
    folder = tmp_path_factory.mktemp("big")
    (folder / "node0.log").write_bytes(lines * 40_000)
    return folder / "node0.log"


def _kill(proc: subprocess.Popen[str]) -> None:
    """kill -9, then reap; its pipes are closed here (an orphaned child could hold them open for ever)."""
    proc.kill()
    proc.wait(timeout=30)
    for pipe in (proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()


def _cli(*args: str) -> tuple[int, str, str]:
    r = runner.invoke(app, list(args))
    return r.exit_code, r.stdout, r.stderr


def test_parsers_exit_when_the_ingest_is_killed(big_log: Path, tmp_path: Path) -> None:
    proc = _start("parse", "ingest", str(big_log), "--run", "big", "--workers", "2", "--json",
                  "--data-dir", str(tmp_path / "store"))  # fmt: skip
    _wait_paused(proc, "parse")
    workers = _workers_of(proc.pid)
    assert len(workers) == 2
    _kill(proc)
    try:
        assert _within(5.0, lambda: not any(_alive(w) for w in workers)), "parser processes outlived the ingest"
    finally:
        for w in workers:  # a failed test must not leave them behind either
            if _alive(w):
                os.kill(w, signal.SIGKILL)


def test_a_kill_during_the_first_ingest_of_a_run_leaves_no_run(big_log: Path, tmp_path: Path) -> None:
    """Found end to end: after kill -9 of the first ingest into a run, ``runs`` listed it with its
    nodes, no source and no event; a run left without any source is removed, as a failed ingest's is."""
    d = str(tmp_path / "store")
    proc = _start("parse", "ingest", str(big_log), "--run", "big", "--workers", "1", "--json", "--data-dir", d)
    _wait_paused(proc, "parse")
    _kill(proc)
    assert json.loads(_cli("runs", "--json", "--data-dir", d)[1]) == []


@pytest.mark.parametrize("phase", ["derive", "rollups"])
def test_a_kill_while_deriving_is_repaired_by_the_next_ingest(wal_testnet: Path, tmp_path: Path, phase: str) -> None:
    d, clean = str(tmp_path / "store"), str(tmp_path / "clean")
    proc = _start(phase, "ingest", str(wal_testnet), "--run", "v034", "--json", "--data-dir", d)
    _wait_paused(proc, phase)
    _kill(proc)
    code, out, err = _cli("ingest", str(wal_testnet), "--run", "v034", "--json", "--data-dir", d)
    assert code == 0, err
    assert {f["status"] for f in json.loads(out)["files"] if f["format"]} == {"duplicate"}
    assert _cli("ingest", str(wal_testnet), "--run", "v034", "--json", "--data-dir", clean)[0] == 0
    assert _derived(d) == _derived(clean)


def test_rebuild_and_delete_commands(wal_testnet: Path, tmp_path: Path) -> None:
    d = str(tmp_path / "store")
    proc = _start("rollups", "ingest", str(wal_testnet / "node0"), str(wal_testnet / "node1"), "--run", "r",
                  "--json", "--data-dir", d)  # fmt: skip
    _wait_paused(proc, "rollups")
    _kill(proc)
    runs = json.loads(_cli("runs", "--json", "--data-dir", d)[1])
    assert [(r["name"], r["derived"]) for r in runs] == [("r", "stale")]
    code, out, err = _cli("rebuild", "r", "--data-dir", d)
    assert code == 0 and "rebuilt" in out, err
    runs = json.loads(_cli("runs", "--json", "--data-dir", d)[1])
    assert [(r["name"], r["derived"]) for r in runs] == [("r", "current")]
    code, _, err = _cli("delete", "r", "--data-dir", d)
    assert code == 2 and "--yes" in err
    code, out, _ = _cli("delete", "r", "--yes", "--data-dir", d)
    assert code == 0 and json.loads(_cli("runs", "--json", "--data-dir", d)[1]) == []
    assert _cli("delete", "r", "--yes", "--data-dir", d)[0] == 1


def _rounded(value: object) -> object:
    if isinstance(value, float):
        return float(f"{value:.9g}")
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    return value


def _derived(data_dir: str) -> dict[str, list[tuple[object, ...]]]:
    from bftscope.config import Settings
    from bftscope.store import open_store

    store = open_store(Settings(data_dir=Path(data_dir)))
    try:
        rid = store.get_run("v034").id
        out = {}
        for table in ("vote_arrivals", "deliveries", "unmatched_receipts", "rollups", "validator_sets",
                      "validator_priorities"):  # fmt: skip
            rows = store.query(f"SELECT * EXCLUDE (run_id) FROM {table} WHERE run_id = ? ORDER BY ALL", [rid])
            out[table] = rows
        # Rollups are JSON with floats whose last digit depends on the order of a parallel sum (two clean
        # runs differ there too): compared to 9 significant digits.
        out["rollups"] = [(name, _rounded(json.loads(value))) for name, value in out["rollups"]]
        assert out["vote_arrivals"] and out["deliveries"] and len(out["rollups"]) > 10 and out["validator_sets"]
        return out
    finally:
        store.close()


def test_ctrl_c_says_one_line_and_keeps_what_agrees(
    big_log: Path, json_debug_lines: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    tmp = tmp_path_factory.mktemp("a-small")  # sorts before the big file: parsed first
    small = tmp / "node1.log"
    # the same lines in another order: not a prefix of the big file, which would make it a grown copy of it
    small.write_bytes(b"".join(reversed(json_debug_lines.read_bytes().splitlines(keepends=True))))
    d = str(tmp / "store")
    # the small file finishes first; the big one is cut short by the interrupt
    proc = _start("parse-after-small", "ingest", str(small), str(big_log), "--run", "big", "--workers", "2",
                  "--data-dir", d, new_session=True)  # fmt: skip
    _wait_paused(proc, "parse-after-small")
    workers = _workers_of(proc.pid)
    os.killpg(proc.pid, signal.SIGINT)  # as a terminal does: to the whole process group
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert workers and not any(_alive(w) for w in workers)  # stopped by the ingest before it exited
    lines = [x for x in err.splitlines() if x.strip()]
    assert len(lines) == 1, err
    m = re.fullmatch(r"interrupted: kept ([\d,]+) events of (\d+) files?; run `bftscope ingest .*` again to finish",
                     lines[0])  # fmt: skip
    assert m is not None, lines[0]
    kept = int(m.group(1).replace(",", ""))
    assert (kept, m.group(2)) == (28, "1")  # the small file, completely; nothing of the big one
    runs = json.loads(_cli("runs", "--json", "--data-dir", d)[1])
    summary = json.loads(_cli("summary", "big", "--json", "--data-dir", d)[1])
    assert runs[0]["events"] == summary["events"] == kept
    # and running it again finishes the job
    code, _, err = _cli("ingest", str(small), str(big_log), "--run", "big", "--json", "--data-dir", d)
    assert code == 0, err
    summary = json.loads(_cli("summary", "big", "--json", "--data-dir", d)[1])
    assert summary["events"] == 28 + 28 * 40_000
