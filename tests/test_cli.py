"""The command line as a user drives it: ingest, runs, summary, events, report; errors and exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from starlette.testclient import TestClient
from typer.testing import CliRunner

from bftscope.api.app import create_app
from bftscope.cli import app
from bftscope.config import Settings

runner = CliRunner()


def _run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout


def test_ingest_query_and_report(wal_testnet: Path, tmp_path: Path) -> None:
    d = str(tmp_path / "store")
    code, out = _run("ingest", str(wal_testnet), "--run", "v034", "--data-dir", d, "--json")
    assert code == 0, out
    res = json.loads(out)
    # 10,828 WAL records + 232 text-log events + what the WAL parser derives per node: 77 block_complete and
    # 75 timeout_scheduled (tests/families/cometbft/parse/test_wal_derived.py)
    assert res["events"] == 10_828 + 232 + 4 * (77 + 75) == 11_668 and len(res["summary"]["nodes"]) == 4
    assert res["summary"]["height_range"] == {"min": 0, "max": 77}
    assert {f["status"] for f in res["files"] if f["format"]} == {"ingested"}
    not_read = {f["reason"] for f in res["files"] if not f["format"]}
    assert not_read == {"node configuration (read for the node's identity)"}
    assert set(res["phases"]) == {"parse_store", "derive", "rollups"}  # where the time went
    assert all(v > 0 for v in res["phases"].values())
    assert sum(res["phases"].values()) <= res["seconds"] + 0.002  # each rounded to the ms
    code, out = _run("runs", "--data-dir", d, "--json")
    assert code == 0 and json.loads(out)[0]["events"] == 11_668
    code, out = _run("events", "v034", "--data-dir", d, "--json", "--node", "node2", "--kind", "msg_internal",
                     "--from-height", "5", "--to-height", "6", "--limit", "1000")  # fmt: skip
    rows = [json.loads(x) for x in out.splitlines()]
    assert code == 0 and rows
    assert {r["node_label"] for r in rows} == {"node2"} and {r["kind"] for r in rows} == {"msg_internal"}
    assert all(5 <= r["height"] <= 6 for r in rows)
    assert [r["ts"] for r in rows] == sorted(r["ts"] for r in rows)
    # node2's own votes at two heights: prevote + precommit each
    assert sum(1 for r in rows if r["msg_type"] == "vote") == 4
    code, out = _run("report", "v034", "--data-dir", d, "--json")
    rep = json.loads(out)
    assert code == 0 and len(rep["vote_matrix"]) == 12 and len(rep["clock_skew"]) == 6
    code, out = _run("report", "v034", "--data-dir", d)
    assert code == 0 and "Vote propagation" in out and "node3" in out and "Proposers" in out
    plots = tmp_path / "plots"
    code, out = _run("report", "v034", "--data-dir", d, "--plots", str(plots))
    assert code == 0, out
    for name in ("latency-heatmap.png", "heights.png", "latency-distribution.png"):
        data = (plots / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000, name
    page = (plots / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 3 and "Participation" in page and "node3" in page
    # ingesting the same folder again adds nothing
    code, out = _run("ingest", str(wal_testnet), "--run", "v034", "--data-dir", d, "--json")
    assert code == 0 and json.loads(out)["events"] == 0


def test_errors_exit_non_zero_with_a_reason(tmp_path: Path) -> None:
    d = str(tmp_path / "store")
    result = runner.invoke(app, ["ingest", str(tmp_path / "missing"), "--run", "x", "--data-dir", d])
    assert result.exit_code == 1 and "no such file or directory" in result.stderr
    junk = tmp_path / "junk.log"
    junk.write_bytes(b"\x00\x01 not a log\n")
    result = runner.invoke(app, ["ingest", str(junk), "--run", "x", "--data-dir", d])
    assert result.exit_code == 1 and "nothing could be ingested" in result.stderr
    result = runner.invoke(app, ["summary", "nope", "--data-dir", d])
    assert result.exit_code == 1 and "no run named 'nope'" in result.stderr
    result = runner.invoke(app, ["events", "nope", "--node", "x", "--data-dir", d])
    assert result.exit_code == 1


def test_serve_refuses_unsafe_setups(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    d = str(tmp_path / "store")
    result = runner.invoke(app, ["serve", "--data-dir", d, "--host", "0.0.0.0", "--local"])
    assert result.exit_code == 1 and "refused on 0.0.0.0" in result.output
    monkeypatch.setenv("BFTSCOPE_WORKERS", "2")
    result = runner.invoke(app, ["serve", "--data-dir", d])
    assert result.exit_code == 1 and "single writer" in result.output


def test_serve_on_a_store_another_process_holds_is_one_line(tmp_path: Path) -> None:
    """Found end to end: a second ``serve`` (or ``serve`` during a CLI ingest) printed a 59-line double
    traceback from the server's start-up and exited 3. It says in one line who holds the store."""
    import socket
    import subprocess
    import sys

    store = tmp_path / "store" / "bftscope.duckdb"
    store.parent.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", f"import duckdb, time; c = duckdb.connect({str(store)!r}); print('held', flush=True);"
         " time.sleep(60)"], stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = str(s.getsockname()[1])
        for args in (["serve", "--port", port], ["users", "create", "ops", "--admin"], ["runs"]):
            result = runner.invoke(app, [*args, "--data-dir", str(store.parent)])
            assert result.exit_code == 1, (args, result.output)
            assert "Traceback" not in result.output and f"PID {holder.pid}" in result.stderr, result.stderr
            assert "another process" in result.stderr
    finally:
        holder.kill()
        holder.wait()
        assert holder.stdout is not None
        holder.stdout.close()


def test_users_create_prints_the_token_once_and_closes_the_bootstrap(tmp_path: Path) -> None:
    d = str(tmp_path / "d")
    result = runner.invoke(app, ["users", "create", "ops", "--admin", "--data-dir", d])
    assert result.exit_code == 0, result.output
    token = next(w for w in result.output.split() if w.startswith("bfts_"))
    result = runner.invoke(app, ["users", "create", "ops", "--data-dir", d])
    assert result.exit_code == 1 and "already exists" in result.output
    settings = Settings(data_dir=tmp_path / "d", rate_limit_enabled=False)
    with TestClient(create_app(settings)) as client:
        me = client.get("/v1/users", headers={"Authorization": f"Bearer {token}"}).json()
        assert [(u["username"], u["isAdmin"]) for u in me] == [("ops", True)]
        r = client.post("/v1/users", json={"username": "mallory", "email": "m@corp.io"})
        assert r.status_code == 401  # an operator-made admin closes the anonymous bootstrap


def test_delete_and_ingest_refuse_the_run_of_an_api_simulation(wal_testnet: Path, tmp_path: Path) -> None:
    """Found end to end: ``bftscope delete sim-<id>`` removed the run behind the API's back, which then
    still said the simulation was ``processed`` (with 0 events). The simulation owns its run: the CLI
    points at the API instead of changing it."""
    from bftscope.control.projects import create_project
    from bftscope.control.simulations import create_simulation, get_simulation
    from bftscope.control.users import create_user
    from bftscope.ingest.pipeline import ingest
    from bftscope.store import open_store

    settings = Settings(data_dir=tmp_path / "store")
    store = open_store(settings)
    user, _ = create_user(store, "alice", "alice@corp.io", is_admin=True)
    sim = create_simulation(store, create_project(store, user.id, "testnet").id, user.id, "run1")
    ingest(store, sim.run_name, [wal_testnet / "node0" / "tendermint.log"], settings)
    store.close()
    d = str(tmp_path / "store")
    for args in (("delete", sim.run_name, "--yes"), ("ingest", str(wal_testnet / "node1"), "--run", sim.run_name)):
        r = runner.invoke(app, [*args, "--data-dir", d])
        assert r.exit_code == 1, r.stdout
        assert f"/v1/simulations/{sim.id}" in r.stderr and "Traceback" not in r.stderr
    store = open_store(settings)
    assert get_simulation(store, sim.id).name == "run1"
    assert store.query("SELECT count(*) FROM events WHERE run_id = ?", [store.get_run(sim.run_name).id]) == [(58,)]
    store.close()
