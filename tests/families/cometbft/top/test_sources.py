"""Row sources of ``bftscope top``: a stored run replayed (the command's NAME), its pacing and end; the command's
argument checks; the app consuming a source to its end."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bftscope.cli import app
from bftscope.config import Settings
from bftscope.errors import InputError
from bftscope.families.cometbft.top.app import TopApp
from bftscope.families.cometbft.top.cli import _stored_source
from bftscope.families.cometbft.top.recorded import RecordedSource
from bftscope.ingest.pipeline import ingest
from bftscope.store import DuckDBStore
from tests.conftest import require_data
from tests.families.cometbft.top.conftest import Recorded

runner = CliRunner()


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    testnet = require_data("cometbft/tendermint-v0.34-4node-wal")
    d = tmp_path_factory.mktemp("top-cli")
    settings = Settings(data_dir=d)
    store = DuckDBStore.open(settings.store_path, settings)
    ingest(store, "v034", [testnet / "node0", testnet / "node2"], settings)
    store.close()
    return d


def _drain(source: RecordedSource) -> list[list[dict[str, object]]]:
    async def go() -> list[list[dict[str, object]]]:
        return [[dict(r) for r in b] async for b in source.batches()]

    return asyncio.run(go())


def test_a_stored_run_replays_a_chosen_node(store_dir: Path, node0: Recorded) -> None:
    source = _stored_source("v034", "node0", None, 0.0, store_dir)
    assert isinstance(source, RecordedSource)
    assert source.rows == node0.rows  # the same node's events as the live rows the state tests read
    # the set stored from the homes' genesis.json, with its power; nothing to excuse in the header
    assert [(v.address, v.power, v.index) for v in source.validators()] == [
        (v.address, v.power, v.index) for v in node0.validators
    ]
    assert source.status().detail == "replaying a stored run"
    assert dict(source.names()) == {a: n for a, n in node0.names.items() if n in ("node0", "node2")}
    other = _stored_source("v034", "node2", 40, 0.0, store_dir)
    assert isinstance(other, RecordedSource)
    assert min(r["height"] for r in other.rows) == 40 and other.status().endpoint == "stored node node2"
    with pytest.raises(InputError, match=r"no node 'node9' \(nodes: node0, node2\)"):
        _stored_source("v034", "node9", None, 0.0, store_dir)


def test_recorded_source_batches_by_recorded_time(node0: Recorded) -> None:
    slept: list[float] = []

    async def sleep(s: float) -> None:
        slept.append(s)

    source = RecordedSource(node0.rows[:200], node0.validators, network="v034", endpoint="x", speed=4.0,
                            tick_s=0.5, sleep=sleep)  # fmt: skip
    assert source.status().connection == "connected" and source.now_ns() == node0.rows[0]["ts"]
    batches = _drain(source)
    assert [r for b in batches for r in b] == node0.rows[:200]
    assert set(slept) == {0.125}  # half a second of recording per batch, four times as fast
    for b in batches:
        assert b[-1]["ts"] - b[0]["ts"] < 0.5e9  # type: ignore[operator]
    span = node0.rows[199]["ts"] - node0.rows[0]["ts"]
    assert len(slept) >= span / 0.5e9  # every tick is waited, even one without rows
    end = source.status()
    assert (end.connection, end.detail, end.frames) == ("unknown", "end of recording", 200)
    assert source.now_ns() == node0.rows[199]["ts"]


def test_the_command_wants_a_name_or_rpc(store_dir: Path) -> None:
    result = runner.invoke(app, ["top", "--data-dir", str(store_dir)])
    assert result.exit_code == 1 and "give a stored run NAME, or --rpc URL" in result.stderr
    result = runner.invoke(app, ["top", "nope", "--data-dir", str(store_dir)])
    assert result.exit_code == 1 and "nope" in result.stderr
    result = runner.invoke(app, ["top", "v034", "--rpc", "ftp://127.0.0.1:1"])
    assert result.exit_code == 1 and "not an RPC endpoint: 'ftp://127.0.0.1:1'" in result.stderr


def test_the_app_reads_a_source_to_its_end(node0: Recorded) -> None:
    upto = next(i + 1 for i, r in enumerate(node0.rows) if r["kind"] == "step" and r["height"] == 20)
    source = RecordedSource(node0.rows[:upto], node0.validators, network="v034", endpoint="stored node node0",
                            names=node0.names, speed=0.0)  # fmt: skip
    view = TopApp(source, refresh_s=3600)

    async def go() -> None:
        async with view.run_test(size=(110, 36)) as pilot:
            for _ in range(50):
                await pilot.pause()
                if view.state.rows == upto:
                    break
            view.redraw()
            await pilot.pause()
            header = str(view.query_one("#header").render())
            assert view.state.rows == upto and view.state.view(0).height == 20
            assert "unknown (end of recording)" in header and f"{upto:,} frames" in header
            assert {v.prevote for v in view.state.view(0).validators} == {"unknown"}  # the source has ended

    asyncio.run(go())


def test_a_run_without_a_stored_set_counts_each_voter_once(tmp_path: Path, node0: Recorded) -> None:
    wal = require_data("cometbft/tendermint-v0.34-4node-wal") / "node0" / "data" / "cs.wal" / "wal"
    bare = tmp_path / "wal"
    shutil.copyfile(wal, bare)  # away from its node home: no genesis.json, so no set is stored
    settings = Settings(data_dir=tmp_path / "store")
    store = DuckDBStore.open(settings.store_path, settings)
    ingest(store, "bare", [bare], settings)
    store.close()
    source = _stored_source("bare", None, None, 0.0, tmp_path / "store")
    assert [(v.address, v.power, v.index) for v in source.validators()] == [
        (v.address, 1, v.index) for v in node0.validators
    ]
    assert source.status().detail == "replaying a stored run; voting power not stored: 1 each"
