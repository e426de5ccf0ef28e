"""The vote alerts on the real 4-node v0.34 testnet, through the family's ``vote_outcomes`` seam, height by height
as the supervisor feeds them: the healthy network raises nothing; a validator whose votes are gone for heights
20–40 raises each vote alert once and clears it once, and no one else is alerted."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bftscope.config import Settings
from bftscope.families import registry
from bftscope.ingest.pipeline import ingest
from bftscope.live.alerts import AlertEngine, AlertEvent, Thresholds
from bftscope.store import DuckDBStore
from tests.conftest import require_data

DROPPED = "032DF8EFA3F8F921BFCAD4E72AC251A5760F3E4C"  # node3's validator


@pytest.fixture(scope="module")
def ingested(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = require_data("cometbft/tendermint-v0.34-4node-wal")
    folder = tmp_path_factory.mktemp("v034alerts")
    settings = Settings(data_dir=folder)
    store = DuckDBStore.open(settings.store_path, settings)
    ingest(store, "v034", [data], settings)
    store.close()
    return folder


@pytest.fixture
def store(ingested: Path, tmp_path: Path) -> DuckDBStore:
    shutil.copytree(ingested, tmp_path / "copy")
    settings = Settings(data_dir=tmp_path / "copy")
    return DuckDBStore.open(settings.store_path, settings)


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[int, AlertEvent]] = []
        self.height = 0

    def deliver(self, event: AlertEvent) -> None:
        self.events.append((self.height, event))


def follow_heights(store: DuckDBStore) -> list[tuple[int, str, str, bool]]:
    """(height fed, rule, subject, active) of every alert change, feeding one completed height at a time."""
    rid = store.get_run("v034").id
    top = int(store.query("SELECT max(height) FROM events WHERE run_id = ?", [rid])[0][0])
    rec = Recorder()
    eng = AlertEngine("v034", Thresholds(missed_votes=10, uptime_percent=90, uptime_window=10, uptime_min_blocks=10),
                      [rec], clock=lambda: 0.0)  # fmt: skip
    family = registry.family("cometbft")
    for h in range(1, top + 1):
        rec.height = h
        eng.observe_votes(family.vote_outcomes(store, rid, h, h))
    return [(h, e.rule, e.subject, e.active) for h, e in rec.events]


def test_the_healthy_testnet_raises_no_vote_alert(store: DuckDBStore) -> None:
    assert follow_heights(store) == []


def test_a_validator_silent_for_heights_20_to_40_alerts_once_and_clears_once(store: DuckDBStore) -> None:
    rid = store.get_run("v034").id
    store.execute("DELETE FROM events WHERE run_id = ? AND msg_type = 'vote' AND validator = ? AND height BETWEEN 20"
                  " AND 40", [rid, DROPPED])  # fmt: skip
    changes = follow_heights(store)
    assert {subject for _, _, subject, _ in changes} == {DROPPED}
    # 10 consecutive missed votes = prevote and precommit of heights 20–24; the vote at 41 ends the run
    assert [(h, active) for h, rule, _, active in changes if rule == "missed_votes"] == [(24, True), (41, False)]
    # uptime over the last 10 heights: 2 missed (80 %) at 21; at h ≥ 41 the window holds 50 − h misses, one
    # (90 %, not below 90) at 49
    assert [(h, active) for h, rule, _, active in changes if rule == "uptime"] == [(21, True), (49, False)]
