"""What the follower stores is enough for the missed-vote answers: a watch whose connection is cut (and the
chain moves on meanwhile) shows no ``absent`` that the uncut watch does not also show — the votes it could not
see are ``unknown`` — and both agree on every vote they saw."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from bftscope.cli import app
from bftscope.config import Settings
from bftscope.families.cometbft.missed.votes import missed
from bftscope.store import open_store
from tests.conftest import require_data
from tests.families.cometbft.live.fakenode import FakeNode, serving, wal_chain


def _watch(node: FakeNode, data: Path) -> list[dict[str, Any]]:
    with serving(node.app()) as url:
        result = CliRunner().invoke(app, ["watch", "net", "--rpc", url, "--data-dir", str(data), "--until-height",
                                          "77", "--progress", "0"])  # fmt: skip
    assert result.exit_code == 0, result.output
    store = open_store(Settings(data_dir=data))
    try:
        return missed(store, store.get_run("net").id)
    finally:
        store.close()


def _by_status(rows: list[dict[str, Any]], status: str) -> set[tuple[Any, ...]]:
    """Rows of the 77 committed heights (a watch stopped at 77 may or may not have seen 78 begin)."""
    return {(r["height"], r["round"], r["validator"], r["type"]) for r in rows
            if r["status"] == status and r["height"] <= 77}  # fmt: skip


def test_a_cut_watch_says_unknown_where_the_uncut_one_saw(tmp_path: Path) -> None:
    chain = wal_chain(require_data("cometbft/tendermint-v0.34-4node-wal") / "node0" / "data" / "cs.wal" / "wal")
    whole = _watch(FakeNode(chain), tmp_path / "whole")
    cut = _watch(FakeNode(chain, cuts=(150, 400, 650, 900), skip_on_reconnect=40), tmp_path / "cut")
    assert {r["height"] for r in whole} >= set(range(1, 78)) and {r["height"] for r in cut} >= set(range(2, 77))
    assert _by_status(cut, "absent") <= _by_status(whole, "absent") == set()  # node0 alone shows no absent
    unknown_now = _by_status(cut, "unknown") - _by_status(whole, "unknown")
    assert unknown_now  # the votes lost with the connections
    seen_whole = _by_status(whole, "voted") | _by_status(whole, "late") | _by_status(whole, "nil")
    assert unknown_now <= seen_whole  # each was seen by the uncut watch
    for status in ("voted", "nil"):  # what the cut watch did see, it classifies as the uncut one does
        assert _by_status(cut, status) <= _by_status(whole, status) | _by_status(whole, "late")
