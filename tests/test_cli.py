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
    # 75 timeout_scheduled (tests/cometbft/test_wal_derived.py)
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
