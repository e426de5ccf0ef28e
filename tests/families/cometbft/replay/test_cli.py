"""`bftscope replay` on the command line: a whole replay that exits at the end, and clear errors for bad input."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bftscope.cli import app
from bftscope.errors import InputError
from bftscope.families.cometbft.replay.cli import parse_listen
from tests.conftest import require_data
from tests.families.cometbft.replay.replaydata import TESTNET

runner = CliRunner()


def _run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["replay", *args])
    return result.exit_code, result.output + (result.stderr if result.stderr_bytes is not None else "")


def test_replays_a_node_to_the_end_and_exits() -> None:
    code, text = _run(str(require_data(TESTNET) / "node1"), "--listen", "127.0.0.1:0", "--speed", "5000",
                      "--at-end", "exit", "--drop-validator", "5917b48a13eff68a47e9c309518deb3e648749ee")  # fmt: skip
    assert code == 0, text
    assert "node1: 77 blocks" in text and "77 NewBlock" in text
    assert "vote of the dropped validator" in text  # what is not served is counted
    assert "end of the recording at height 77" in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "several nodes (node0, node1, node2, node3): choose one with --node"),
        (("--node", "node9"), "no node 'node9'"),
        (("--node", "node0", "--listen", "localhost"), "expected HOST:PORT"),
        (("--node", "node0", "--fail", "nope"), "cannot fail unknown method(s) nope"),
        (("--node", "node0", "--drop-validator", "AB" * 20), "not a validator of genesis.json"),
        (("--node", "node0", "--at-end", "forever"), "expected 'hold', 'exit' or 'loop'"),
    ],
)
def test_bad_input_is_one_clear_error(args: tuple[str, ...], message: str) -> None:
    code, text = _run(str(require_data(TESTNET)), *args)
    assert code == 1 and "error:" in text and message in " ".join(text.split()), text


def test_missing_path_and_busy_port(tmp_path: Path) -> None:
    code, text = _run(str(tmp_path / "nothing"))
    assert code == 1 and "no such file or folder" in text
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, text = _run(str(require_data(TESTNET) / "node0"), "--listen", f"127.0.0.1:{port}")
    assert code == 1 and f"cannot listen on 127.0.0.1:{port}" in text


def test_listen_addresses() -> None:
    assert parse_listen("0.0.0.0:26657") == ("0.0.0.0", 26657)
    assert parse_listen("[::1]:0") == ("::1", 0)
    with pytest.raises(InputError):
        parse_listen("127.0.0.1:99999")
