"""``bftscope watch`` against the fake node: the run holds every vote once and is read by the usual commands;
watching again resumes without a duplicate and stores the time not followed as a gap; Ctrl-C stops cleanly with
the one-line summary; a bad endpoint is a one-line error."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bftscope.cli import app
from bftscope.config import Settings
from bftscope.families import registry
from bftscope.families.cometbft.validators.history import set_at
from bftscope.store import open_store
from tests.conftest import REPO, require_data
from tests.families.cometbft.live.fakenode import Chain, FakeNode, serving, wal_chain


@pytest.fixture
def chain() -> Chain:
    return wal_chain(require_data("cometbft/tendermint-v0.34-4node-wal") / "node0" / "data" / "cs.wal" / "wal")


def _votes(data: Path) -> Counter[tuple[int, int, str, str]]:
    store = open_store(Settings(data_dir=data))
    try:
        rows = store.query("SELECT height, round, vote_type, validator FROM events WHERE kind = 'vote_added'")
    finally:
        store.close()
    return Counter((int(h), int(r), str(t), str(v)) for h, r, t, v in rows)


def test_watch_until_a_height_then_resume(chain: Chain, tmp_path: Path) -> None:
    data = tmp_path / "data"
    node = FakeNode(chain, cuts=(700,))  # the first watch stops around height 30; the node goes on
    with serving(node.app()) as url:
        first = CliRunner().invoke(app, ["watch", "net", "--rpc", url, "--data-dir", str(data), "--until-height",
                                         "30", "--progress", "0"])  # fmt: skip
        assert first.exit_code == 0, first.output
        assert first.output.startswith("net: ") and "committed height" in first.output
        again = CliRunner().invoke(app, ["watch", "net", "--rpc", url, "--data-dir", str(data), "--until-height",
                                         "77", "--progress", "0"])  # fmt: skip
    assert again.exit_code == 0, again.output
    assert "resuming net after height" in again.output, again.output
    votes = _votes(data)
    assert max(votes.values()) == 1 and set(votes) <= chain.votes  # nothing twice across the two watches
    store = open_store(Settings(data_dir=data))
    try:
        heights = store.query("SELECT height FROM events WHERE kind = 'block_committed' ORDER BY height")
        gaps = store.query("SELECT height, extra FROM events WHERE kind = 'observation_gap' ORDER BY ts")
        run = store.get_run("net")
        nodes = [n.label for n in store.nodes(run.id)]
        members = [v.address for v in set_at(store, run.id, 77)]
    finally:
        store.close()
    assert [h for (h,) in heights] == list(range(1, 78)) and run.chain == "cometbft"
    assert nodes == [url.removeprefix("http://")]
    assert members == [v["address"] for v in chain.validators]  # fetched with /validators, in set order
    reasons = [json.loads(extra)["reason"] for _, extra in gaps]
    # the pause between the two watches, and the cut if the first watch was still running at frame 700
    assert "not followed (bftscope was not running)" in reasons
    assert all(r.startswith("not followed") or "1011" in r for r in reasons) and len(reasons) <= 2
    listed = CliRunner().invoke(app, ["events", "net", "--data-dir", str(data), "--kind", "commit_sig", "--json",
                                      "--limit", "1000"])  # fmt: skip
    assert listed.exit_code == 0 and {json.loads(x)["height"] for x in listed.output.splitlines()} >= set(range(1, 77))


def test_ctrl_c_stops_cleanly_with_a_summary(chain: Chain, tmp_path: Path) -> None:
    node = FakeNode(chain, silent_at=400)  # a stream that goes quiet: watch keeps waiting until Ctrl-C
    with serving(node.app()) as url:
        env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "COLUMNS": "200"}
        proc = subprocess.Popen(
            [sys.executable, "-c", "from bftscope.cli import main; main()", "watch", "net", "--rpc", url,
             "--data-dir", str(tmp_path / "data"), "--progress", "0.05"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )  # fmt: skip
        assert proc.stderr is not None
        for line in proc.stderr:  # progress lines, until the follower has seen the node go quiet
            if "committed 2" in line:
                break
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr
    (summary,) = stdout.strip().splitlines()
    assert summary.startswith("net: ") and "events" in summary and "Traceback" not in stderr
    assert sum(_votes(tmp_path / "data").values()) > 0


def test_a_bad_endpoint_is_a_one_line_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["watch", "net", "--rpc", "ftp://x:1", "--data-dir", str(tmp_path)])
    assert result.exit_code == 1 and "not an RPC endpoint" in result.output


def test_the_family_offers_the_rpc_source() -> None:
    (spec,) = registry.family("cometbft").live_sources
    assert spec.name == "cometbft-rpc" and spec.decoder().report.events == 0
