"""What a live run keeps of the heights whose events retention prunes: the real v0.34 testnet, written through a
live run's sink without one validator's node and votes (so it is absent, and the answers are not all "voted"),
answers ``missed`` and the per-height summaries the same before and after its older heights are pruned; a
second prune adds nothing; uploaded runs are untouched; the kept rows go after their own (summary) window."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pytest
from typer.testing import CliRunner

from bftscope.cli import app
from bftscope.config import Settings
from bftscope.families.cometbft.analytics import heights
from bftscope.families.cometbft.missed import answer
from bftscope.families.cometbft.missed import kept as kept_rows
from bftscope.families.cometbft.missed.votes import missed
from bftscope.ingest.livesink import StoreSink
from bftscope.ingest.pipeline import ingest
from bftscope.live import retention
from bftscope.model import ROW_SCHEMA
from bftscope.store.duckdb.engine import DuckDBStore
from tests.conftest import require_data

DAY = 86_400.0
TOP = 1 << 40


def _settings(tmp_path: Path, raw_s: float, summary_s: float) -> Settings:
    return Settings(data_dir=tmp_path / "data", query_timeout_s=30, retention_raw_days=raw_s / DAY,
                    retention_summary_days=summary_s / DAY)  # fmt: skip


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int, int]:
    """A store with (the testnet as uploaded, the testnet as a live run without its last validator's node and
    votes), built once for the module; each test gets a copy."""
    wal_testnet = require_data("cometbft/tendermint-v0.34-4node-wal")
    settings = Settings(data_dir=tmp_path_factory.mktemp("kept") / "data", query_timeout_s=30)
    store = DuckDBStore.open(settings.store_path, settings)
    try:
        uploaded = ingest(store, "recorded", [wal_testnet], settings).run_id
        nodes = sorted(store.nodes(uploaded), key=lambda n: n.label)
        silent = nodes[-1]
        assert silent.validator
        cols = ", ".join(f.name for f in ROW_SCHEMA)
        events = store.query_arrow(f"SELECT node, {cols} FROM events WHERE run_id = ? AND kind <> 'node_restart'"
                                   " AND coalesce(validator, '') <> ? ORDER BY ts, id",
                                   [uploaded, silent.validator])  # fmt: skip
        sink = StoreSink(store, "live", "cometbft", update_every_s=None)
        for n in nodes[:-1]:
            sink.write(n.label, [events.filter(pc.equal(events.column("node"), n.node)).drop_columns(["node"])])
        sink.flush()
        live = store.get_run("live").id
        store.execute("INSERT INTO validator_sets SELECT * REPLACE (? AS run_id, 'rpc' AS source)"
                      " FROM validator_sets WHERE run_id = ?", [live, uploaded])  # fmt: skip
    finally:
        store.close()
    return settings.store_path, uploaded, live


@pytest.fixture
def store(settings: Settings, template: tuple[Path, int, int]) -> Iterator[DuckDBStore]:
    settings.store_path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(template[0], settings.store_path)
    s = DuckDBStore.open(settings.store_path, settings)
    yield s
    s.close()


@pytest.fixture
def runs(store: DuckDBStore, template: tuple[Path, int, int]) -> tuple[int, int]:
    """(the uploaded run, the live run) of the store."""
    return template[1], template[2]


def _answers(store: DuckDBStore, run_id: int) -> dict[str, Any]:
    return {
        "missed": missed(store, run_id),
        "pages": [missed(store, run_id, limit=97, offset=o) for o in range(0, 700, 97)],
        "absent": missed(store, run_id, statuses=["absent", "unknown"], from_height=20, to_height=60),
        "summary": answer.missed_summary(store, run_id, from_height=0, to_height=TOP, window=50),
        "heights": heights.heights(store, run_id, 0, TOP),
    }


def _count(store: DuckDBStore, table: str, run_id: int, where: str = "true") -> int:
    return int(store.query(f"SELECT count(*) FROM {table} WHERE run_id = ? AND {where}", [run_id])[0][0])


def _last_ts_s(store: DuckDBStore, run_id: int) -> float:
    return int(store.query("SELECT max(ts) FROM events WHERE run_id = ?", [run_id])[0][0]) / 1e9


def test_missed_votes_and_summaries_of_pruned_heights_are_kept(store: DuckDBStore, runs: tuple[int, int],
                                                                tmp_path: Path) -> None:  # fmt: skip
    uploaded, live = runs
    before = _answers(store, live)
    statuses = {r["status"] for r in before["missed"]}
    assert {"voted", "absent"} <= statuses  # the silent validator is absent where a round was watched whole
    settings = _settings(tmp_path, raw_s=100, summary_s=3600)
    result = retention.prune(store, live, _last_ts_s(store, live), settings)  # the last 100 s of ~157 stay
    cut = result.raw_cut_height
    assert cut is not None and 20 < cut < 70 and result.removed["events"] > 0
    # the first height kept is "absent", not "unknown", though its observers' previous height is gone: they
    # recorded its end (kept in the height's summary), so they watched the round whole
    assert "absent" in {r["status"] for r in before["missed"] if r["height"] == cut}
    assert _count(store, "events", live, f"height < {cut}") == 0
    assert result.kept == {"missed_votes": _count(store, "missed_votes", live),
                           "height_summaries": _count(store, "height_summaries", live)}  # fmt: skip
    assert _count(store, "missed_votes", live) == sum(r["height"] < cut for r in before["missed"])
    assert _count(store, "height_summaries", live) == cut  # heights 0 .. cut - 1
    assert _answers(store, live) == before
    # the kept rows are what answers the pruned heights: without them those heights have nothing
    store.execute("DELETE FROM missed_votes WHERE run_id = ?", [live])
    assert missed(store, live, to_height=cut - 1) == []

    assert _count(store, "missed_votes", uploaded) == 0 and _count(store, "height_summaries", uploaded) == 0


def test_a_second_prune_adds_nothing(store: DuckDBStore, runs: tuple[int, int], tmp_path: Path) -> None:
    _, live = runs
    before = _answers(store, live)
    settings = _settings(tmp_path, raw_s=80, summary_s=3600)
    now = _last_ts_s(store, live)
    retention.prune(store, live, now, settings)
    kept = {t: _count(store, t, live) for t in ("missed_votes", "height_summaries")}
    again = retention.prune(store, live, now, settings)
    assert again.kept == {} and again.removed == {}
    assert {t: _count(store, t, live) for t in kept} == kept
    # the family's keep run twice over the same heights replaces its rows, never adds
    from bftscope.families import registry

    family = registry.family_of_run(store, live)
    top = int(store.query("SELECT max(height) FROM events WHERE run_id = ?", [live])[0][0])
    assert family.keep_before_prune(store, live, top) == family.keep_before_prune(store, live, top)
    rows = store.query("SELECT height, round, validator, type, count(*) FROM missed_votes WHERE run_id = ?"
                       " GROUP BY ALL HAVING count(*) > 1", [live])  # fmt: skip
    assert rows == []
    assert _count(store, "height_summaries", live) == top
    # a batch of heights per transaction: the rows of a height do not depend on the batch it was computed in
    tables = {t: store.query(f"SELECT * FROM {t} WHERE run_id = ? ORDER BY ALL", [live])
              for t in ("missed_votes", "height_summaries")}  # fmt: skip
    kept_rows.keep(store, live, top, batch=7)
    assert {t: store.query(f"SELECT * FROM {t} WHERE run_id = ? ORDER BY ALL", [live]) for t in tables} == tables
    assert _answers(store, live) == before  # kept rows above the cut are not read: the events answer there


def test_uploaded_runs_are_left_alone(store: DuckDBStore, runs: tuple[int, int], tmp_path: Path) -> None:
    uploaded, _ = runs
    before = _answers(store, uploaded)
    result = retention.prune(store, uploaded, _last_ts_s(store, uploaded) + 10 * DAY,
                             _settings(tmp_path, raw_s=80, summary_s=3600))  # fmt: skip
    assert result.skipped and result.kept == {} and result.removed == {}
    assert _answers(store, uploaded) == before


def test_kept_rows_go_after_the_summary_window(store: DuckDBStore, runs: tuple[int, int], tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    _, live = runs
    monkeypatch.setattr(answer, "DEFAULT_SPAN", 20)  # without a range: the last 20 heights
    last_heights = answer.default_range(store, live, None, None)
    assert last_heights[0] is not None
    settings = _settings(tmp_path, raw_s=80, summary_s=1020)
    now = _last_ts_s(store, live)
    cut = retention.prune(store, live, now, settings).raw_cut_height
    before = {t: _count(store, t, live) for t in ("missed_votes", "height_summaries")}
    assert cut is not None and all(before.values())
    answers = missed(store, live)
    # 1000 s on: every event is past the raw window; the summary window reaches into its last 20 s
    later = retention.prune(store, live, now + 1000, settings)
    top = int(store.query("SELECT max(height) FROM height_summaries WHERE run_id = ?", [live])[0][0])
    keep_from = later.summary_cut_height
    assert keep_from is not None and cut < keep_from < top
    assert _count(store, "events", live) == 0
    for table in ("missed_votes", "height_summaries"):
        assert _count(store, table, live, f"height < {keep_from}") == 0
        assert _count(store, table, live, f"height >= {keep_from}") > 0
    assert later.removed["missed_votes"] == sum(r["height"] < keep_from for r in answers)
    assert later.removed["height_summaries"] == keep_from
    assert missed(store, live) == [r for r in answers if r["height"] >= keep_from]
    assert answer.default_range(store, live, None, None) == last_heights  # from the kept rows, the events gone


def test_the_command_answers_the_same_after_a_prune(store: DuckDBStore, runs: tuple[int, int], settings: Settings,
                                                    tmp_path: Path) -> None:  # fmt: skip
    _, live = runs
    runner = CliRunner()
    d = str(settings.data_dir)

    def command(*args: str) -> Any:
        res = runner.invoke(app, ["missed", "live", "--data-dir", d, *args])
        assert res.exit_code == 0, res.output
        return json.loads(res.stdout) if "--json" in args else res.stdout

    before = (command("--json"), command("--json", "--from", "10", "--to", "45"), command("--window", "30"))
    assert any(r["status"] == "absent" for r in before[0])
    retention.prune(store, live, _last_ts_s(store, live), _settings(tmp_path, raw_s=100, summary_s=3600))
    assert int(store.query("SELECT min(height) FROM events WHERE run_id = ?", [live])[0][0]) > 20
    assert (command("--json"), command("--json", "--from", "10", "--to", "45"), command("--window", "30")) == before


def test_an_observation_gap_across_the_cut_is_kept(store: DuckDBStore, runs: tuple[int, int],
                                                   tmp_path: Path) -> None:  # fmt: skip
    """A gap recorded at a pruned height that reaches into the kept ones still makes those heights unknown."""
    _, live = runs
    settings = _settings(tmp_path, raw_s=100, summary_s=3600)
    now = _last_ts_s(store, live)
    # where this window cuts: the lowest height with an event in the last 100 s
    cut = int(store.query("SELECT min(height) FROM events WHERE run_id = ? AND ts >= ?",
                          [live, int((now - 100) * 1e9)])[0][0])  # fmt: skip
    (t0,) = store.query("SELECT min(ts) FROM events WHERE run_id = ? AND height = ?", [live, cut - 3])[0]
    (t1,) = store.query("SELECT max(ts) FROM events WHERE run_id = ? AND height = ?", [live, cut + 2])[0]
    for node in store.nodes(live):  # every observer was away: no round there was watched whole
        store.execute("INSERT INTO events (run_id, id, node, source, ts, kind, height, extra) SELECT run_id,"
                      " max(id) + 1, ?, min(source), ?, 'observation_gap', ?, ? FROM events WHERE run_id = ?"
                      " GROUP BY run_id", [node.node, t0, cut - 3, f'{{"end_ns": {t1}, "to_height": {cut + 2}}}',
                                           live])  # fmt: skip
    before = _answers(store, live)
    statuses = {r["status"] for r in before["missed"] if cut - 3 <= r["height"] <= cut + 2}
    assert "unknown" in statuses and "absent" not in statuses
    result = retention.prune(store, live, now, settings)
    assert result.raw_cut_height == cut
    assert _answers(store, live) == before
