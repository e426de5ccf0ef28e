"""Casper retention by age and by size on a store of real node payloads (docs/casper.md "Retention"): what goes
goes whole (entity, payload, block deploys, era weights, every node's event-log rows), each table's count is
reported, and de-duplication of what is kept still holds. Expected counts are computed here from the events
written, never from the code's output."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import pytest

from bftscope.config import Settings
from bftscope.families.casper.model import CasperEvent
from bftscope.families.casper.retention import prune
from bftscope.families.casper.store import CasperStore
from bftscope.live.retention import Pruner, live_runs
from bftscope.store.duckdb import DuckDBStore
from tests.families.casper.scenario import NODES, Truth, build
from tests.families.casper.streams import Payloads

DAY_NS = 86_400 * 10**9
TABLES = {"BlockAdded": "casper_blocks", "FinalitySignature": "casper_signatures", "Fault": "casper_faults",
          "DeployAccepted": "casper_deploys_accepted", "DeployProcessed": "casper_deploys_processed",
          "DeployExpired": "casper_deploys_expired"}  # fmt: skip


@dataclass
class Entity:
    type: str
    key: str
    first_ns: int
    bytes: int
    events: int
    deploys: int  # a block's deploy and transfer hashes
    weights_for: int | None  # the era an era-end block sets weights for
    era: int | None


@pytest.fixture
def store(tmp_path: Path) -> Iterator[DuckDBStore]:
    settings = Settings(data_dir=tmp_path / "data", query_timeout_s=30)
    s = DuckDBStore.open(settings.store_path, settings)
    yield s
    s.close()


@pytest.fixture(scope="module")
def scenario() -> tuple[list[CasperEvent], Truth]:
    """The scenario received in the last hour (a restarted writer remembers the last day's events of each node
    channel from the log: the event level is checked against what retention left there)."""
    events, t = build(Payloads.load())
    offset = time.time_ns() - 3_600 * 10**9 - events[-1].received_ns
    t.block_seen = {k: ns + offset for k, ns in t.block_seen.items()}
    return [msgspec.structs.replace(e, received_ns=e.received_ns + offset) for e in events], t


def _entities(events: list[CasperEvent]) -> list[Entity]:
    """Each entity once, in the order the store first sees it (its out_id order), from the events alone."""
    seen: dict[tuple[str, str], Entity] = {}
    for e in events:
        ent = seen.get((e.type, e.key))
        if ent is None:
            f = e.fields
            block = e.type == "BlockAdded"
            weights = f.get("next_era_weights") if block else None
            hashes = len(f["deploy_hashes"]) + len(f["transfer_hashes"]) if block else 0
            seen[(e.type, e.key)] = Entity(e.type, e.key, e.received_ns, len(e.raw), 1, hashes,
                                           int(f["era_id"]) + 1 if weights else None,
                                           int(f["era_id"]) if block else None)  # fmt: skip
        else:
            ent.events += 1
    return list(seen.values())


def _expected(entities: list[Entity], gone: list[Entity]) -> dict[str, int]:
    out: dict[str, int] = {"casper_payloads": len(gone), "casper_event_log": sum(g.events for g in gone),
                           "casper_block_deploys": sum(g.deploys for g in gone)}  # fmt: skip
    for g in gone:
        out[TABLES[g.type]] = out.get(TABLES[g.type], 0) + 1
    gone_keys = {(g.type, g.key) for g in gone}
    kept_eras = {e.era for e in entities if e.type == "BlockAdded" and (e.type, e.key) not in gone_keys}
    out["casper_era_weights"] = sum(4 for g in gone if g.weights_for is not None and g.weights_for not in kept_eras)
    return {k: v for k, v in out.items() if v}


def _stored(store: DuckDBStore, events: list[CasperEvent]) -> int:
    run = store.get_or_create_run("net:cspr", "casper")
    for i in range(0, len(events), 500):  # in arrival order: each entity's first receipt is its earliest
        CasperStore(store, run.id).write(events[i : i + 500])
    return run.id


def _counts(store: DuckDBStore, run_id: int) -> dict[str, int]:
    tables = ["casper_payloads", "casper_event_log", "casper_block_deploys", "casper_era_weights", *TABLES.values()]
    return {t: int(store.query(f"SELECT count(*) FROM {t} WHERE run_id = ?", [run_id])[0][0]) for t in tables}


def _dedup_holds(store: DuckDBStore, run_id: int, events: list[CasperEvent], kept: set[tuple[str, str]]) -> None:
    again = [e for e in events if (e.type, e.key) in kept]
    res = CasperStore(store, run_id).write(again)  # the same node events again: a start_from replay
    assert res.new_events == 0 and res.duplicate_events == len(again) and res.stored == []
    other = [CasperEvent("n9:9999", e.channel, i, e.type, e.key, e.received_ns, e.raw, e.fields)
             for i, e in enumerate(again)]  # fmt: skip
    res = CasperStore(store, run_id).write(other)  # another node sending what is kept: no new entity
    assert res.stored == [] and res.duplicate_entities == len(other)


def test_by_age_whole_entities_go_in_batches_and_each_table_is_counted(
        store: DuckDBStore, scenario: tuple[list[CasperEvent], Truth]) -> None:  # fmt: skip
    events, t = scenario
    run_id = _stored(store, events)
    entities = _entities(events)
    before = _counts(store, run_id)
    cut = t.block_seen[(NODES[0], 130)]
    gone = [e for e in entities if e.first_ns < cut]
    want = _expected(entities, gone)
    assert 0 < len(gone) < len(entities) and want["casper_block_deploys"] > 0
    removed = prune(store, run_id, now_ns=cut + 7 * DAY_NS, retain_days=7, retain_bytes=2**40, batch=7)
    assert removed == want
    after = _counts(store, run_id)
    assert {k: before[k] - after[k] for k in before if before[k] != after[k]} == want
    # what is left is whole: every kept block still has its deploys, nothing points at a pruned entity
    assert store.query("SELECT count(*) FROM casper_block_deploys d WHERE d.run_id = ? AND d.block_hash NOT IN "
                       "(SELECT block_hash FROM casper_blocks WHERE run_id = ?)", [run_id, run_id])[0][0] == 0
    assert store.query("SELECT min(height) FROM casper_blocks WHERE run_id = ?", [run_id])[0][0] == 130
    assert store.query("SELECT DISTINCT era_id FROM casper_era_weights WHERE run_id = ? ORDER BY 1",
                       [run_id]) == [(1,), (2,)]  # era 1's weights stay with its blocks  # fmt: skip
    kept = {(e.type, e.key) for e in entities if e.first_ns >= cut}
    _dedup_holds(store, run_id, events, kept)
    assert prune(store, run_id, now_ns=cut + 7 * DAY_NS, retain_days=7, retain_bytes=2**40) == {}  # nothing older


def test_by_size_the_oldest_entities_go_until_the_payloads_fit(
        store: DuckDBStore, scenario: tuple[list[CasperEvent], Truth]) -> None:  # fmt: skip
    events, _ = scenario
    run_id = _stored(store, events)
    entities = _entities(events)
    limit = sum(e.bytes for e in entities) // 3
    held, kept_from = 0, len(entities)
    while kept_from > 0 and held + entities[kept_from - 1].bytes <= limit:  # the newest that fit
        kept_from -= 1
        held += entities[kept_from].bytes
    gone = entities[:kept_from]
    removed = prune(store, run_id, now_ns=events[-1].received_ns, retain_days=7, retain_bytes=limit)
    assert removed == _expected(entities, gone)
    assert store.query("SELECT sum(bytes) FROM casper_payloads WHERE run_id = ?", [run_id])[0][0] == held <= limit
    _dedup_holds(store, run_id, events, {(e.type, e.key) for e in entities[kept_from:]})


def test_the_newest_entity_always_stays_and_the_out_id_sequence_goes_on(
        store: DuckDBStore, scenario: tuple[list[CasperEvent], Truth]) -> None:  # fmt: skip
    events, _ = scenario
    run_id = _stored(store, events)
    entities = _entities(events)
    removed = prune(store, run_id, now_ns=events[-1].received_ns + 30 * DAY_NS, retain_days=7, retain_bytes=0)
    assert removed["casper_payloads"] == len(entities) - 1
    (top,) = store.query("SELECT max(out_id) FROM casper_payloads WHERE run_id = ?", [run_id])[0]
    assert top == len(entities)
    fresh = [CasperEvent("n9:9999", "main", 1, "Step", "999999", events[-1].received_ns + 1,
                         b'{"Step":{"era_id":999999}}', {"era_id": 999999})]  # fmt: skip
    assert [s.out_id for s in CasperStore(store, run_id).write(fresh).stored] == [len(entities) + 1]


def test_the_servers_pruner_prunes_casper_runs_through_the_family(
        store: DuckDBStore, scenario: tuple[list[CasperEvent], Truth], tmp_path: Path) -> None:  # fmt: skip
    events, t = scenario
    run_id = _stored(store, events)
    entities = _entities(events)
    cut = t.block_seen[(NODES[0], 150)] - 500_000  # the clock is float seconds: keep the cut clear of any receipt
    assert not [e for e in entities if abs(e.first_ns - cut) < 10_000]
    settings = Settings(data_dir=tmp_path / "data", casper_retain_days=2)
    assert run_id in live_runs(store)
    pruner = Pruner(store, settings, clock=lambda: (cut + 2 * DAY_NS) / 1e9)
    (result,) = pruner.prune_once()
    want = _expected(entities, [e for e in entities if e.first_ns < cut])
    assert result.run_id == run_id and result.removed == want
    assert {table: n for (rid, table), n in pruner.removed.items() if rid == run_id} == want


def test_settings_read_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BFTSCOPE_CASPER_RETAIN_DAYS", "3.5")
    monkeypatch.setenv("BFTSCOPE_CASPER_RETAIN_BYTES", "1000")
    s: Any = Settings()
    assert (s.casper_retain_days, s.casper_retain_bytes) == (3.5, 1000)
    monkeypatch.delenv("BFTSCOPE_CASPER_RETAIN_DAYS")
    monkeypatch.delenv("BFTSCOPE_CASPER_RETAIN_BYTES")
    assert (Settings().casper_retain_days, Settings().casper_retain_bytes) == (7.0, 2 * 1024**3)


def test_a_casper_runs_size_counts_its_rows(store: DuckDBStore, scenario: tuple[list[CasperEvent], Truth]) -> None:
    from bftscope.live.retention import store_size

    events, _ = scenario
    run_id = _stored(store, events)
    size = store_size(store, run_id, file_bytes=1_000_000)
    assert size.rows["casper_event_log"] == len(events) and size.rows["casper_payloads"] == len(_entities(events))
    assert size.bytes_estimate is not None and size.bytes_estimate > 0
