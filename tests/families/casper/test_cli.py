"""``bftscope casper report NAME`` over a stored Casper network: tables for people, ``--json`` for programs,
windows, and one-line errors (docs/casper.md "Analytics")."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from bftscope.cli import app
from bftscope.config import Settings
from bftscope.families.casper.cli import casper_app
from bftscope.families.casper.sink import CasperSink
from bftscope.families.casper.store import CasperStore
from bftscope.store import open_store
from bftscope.store.duckdb import DuckDBStore
from tests.families.casper.gen import chain
from tests.families.casper.scenario import Truth, build
from tests.families.casper.streams import Payloads, iso_ms

runner = CliRunner()


@pytest.fixture
def data_dir(tmp_path: Path) -> tuple[str, Truth]:
    settings = Settings(data_dir=tmp_path / "store")
    store = DuckDBStore.open(settings.store_path, settings)
    try:
        events, truth = build(Payloads.load())
        CasperStore(store, store.get_or_create_run("net:cspr", "casper").id).write(events)
        store.get_or_create_run("net:cmt", "cometbft")
    finally:
        store.close()
    return str(settings.data_dir), truth


def test_report_json_and_tables(data_dir: tuple[str, Truth]) -> None:
    d, t = data_dir
    lo, hi = t.ts_ms[130], t.ts_ms[165]
    result = runner.invoke(app, ["casper", "report", "cspr", "--data-dir", d, "--json", "--from", iso_ms(lo),
                                 "--to", iso_ms(hi), "--by-account"])  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert set(report) == {"window", "blocktimes", "eras", "proposers", "signatures", "deploys"}
    heights = sorted({h for _, h in t.block_seen if lo <= t.ts_ms[h] <= hi})
    iv = [t.ts_ms[h] - t.ts_ms[h - 1] for h in heights if h - 1 in set(heights)]
    assert report["blocktimes"]["intervals"]["p99_ms"] == pytest.approx(float(np.percentile(iv, 99)))
    assert [e["era_id"] for e in report["eras"]] == [1, 2] and report["deploys"]["accounts"]
    result = runner.invoke(app, ["casper", "report", "net:cspr", "--data-dir", d])
    assert result.exit_code == 0, result.output
    for title in ("Block times", "Eras", "Proposer share against weight", "Finality-signature delay", "Deploy latency"):
        assert title in result.stdout


def test_unknown_networks_other_chains_and_bad_windows_fail_in_one_line(data_dir: tuple[str, Truth]) -> None:
    d, _ = data_dir
    for args, words in ((["nope"], "no run named"), (["cmt"], "not a Casper network"),
                        (["cspr", "--from", "yesterday"], "invalid time range")):  # fmt: skip
        result = runner.invoke(app, ["casper", "report", *args, "--data-dir", d])
        assert result.exit_code == 1 and words in result.output, (args, result.output)


def test_the_casper_sub_app_is_shared_by_every_part_that_adds_to_it() -> None:
    root = typer.Typer()
    first = casper_app(root)
    assert casper_app(root) is first and [g.name for g in root.registered_groups] == ["casper"]


def test_runs_shows_a_casper_runs_stored_events_and_entities_never_stale(tmp_path: Path) -> None:
    events = chain(1, 5, deploys=2, sigs=3)
    again = chain(1, 5, deploys=2, sigs=3, source="n2:9999")  # the same entities from a second node
    store = open_store(Settings(data_dir=tmp_path / "data"))
    try:
        sink = CasperSink(store, "net:cs")
        sink.write("n1:9999", events)
        sink.write("n2:9999", again)  # more events, no more entities
        sink.close()
    finally:
        store.close()
    data = ["--data-dir", str(tmp_path / "data")]
    got = CliRunner().invoke(app, ["runs", "--json", *data])
    assert got.exit_code == 0, got.output
    (run,) = [r for r in json.loads(got.output) if r["name"] == "net:cs"]
    assert (run["events"], run["entities"]) == (len(events) + len(again), len({(e.type, e.key) for e in events}))
    assert run["derived"] != "stale"
    table = CliRunner().invoke(app, ["runs", *data], env={"COLUMNS": "200"})
    line = next(ln for ln in table.output.splitlines() if "net:cs" in ln)
    assert f"{len(events) + len(again):,}" in line and "stale" not in line, line
