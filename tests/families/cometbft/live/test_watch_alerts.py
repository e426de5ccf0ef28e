"""``bftscope watch --alert``: a replayed node with one validator dropped (``bftscope replay --drop-validator``)
raises the missed-votes and uptime alerts for that validator alone, and `missed` shows it absent and a solo miss."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from typer.testing import CliRunner

from bftscope.cli import app
from tests.conftest import require_data

DROPPED = "032DF8EFA3F8F921BFCAD4E72AC251A5760F3E4C"  # node3's validator


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_dropped_validator_raises_its_alert_and_is_a_solo_absent(tmp_path: Path) -> None:
    testnet = require_data("cometbft/tendermint-v0.34-4node-wal")
    port = _port()
    replay = subprocess.Popen(
        [str(Path(sys.executable).parent / "bftscope"), "replay", str(testnet), "--node", "node0", "--listen",
         f"127.0.0.1:{port}", "--speed", "50", "--drop-validator", DROPPED, "--at-end", "hold"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(600):  # a guard against a hang, not a timing
            try:
                if httpx.get(f"{url}/status", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        data = tmp_path / "data"
        result = CliRunner().invoke(app, ["watch", "net", "--rpc", url, "--data-dir", str(data), "--until-height",
                                          "30", "--progress", "0", "--alert", "missedVotes=3",
                                          "--alert", "stalledSeconds=off"])  # fmt: skip
    finally:
        replay.terminate()
        replay.wait(timeout=10)
    assert result.exit_code == 0, result.output
    rows = json.loads(CliRunner().invoke(app, ["missed", "net", "--data-dir", str(data), "--json", "--limit",
                                               "100000"]).output)  # fmt: skip
    mine = [r for r in rows if r["validator"] == DROPPED]
    others = [r for r in rows if r["validator"] != DROPPED]
    assert mine and {r["status"] for r in mine} <= {"absent", "unknown"}
    absent = [r for r in mine if r["status"] == "absent"]
    assert len(absent) >= 0.8 * len(mine) and all(r["solo"] for r in absent)
    assert not any(r["status"] == "absent" for r in others)
    fired = [line for line in result.output.splitlines() if "ALERT" in line]
    assert all(DROPPED in line for line in fired), result.output  # that validator alone
    assert {line.split()[1] for line in fired} == {"missed_votes", "uptime"}, result.output
