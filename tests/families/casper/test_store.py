"""The Casper store keeps each event once and each entity once, in any arrival order (docs/casper.md "Store")."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from bftscope.config import Settings
from bftscope.families.casper.decoder import CasperDecoder
from bftscope.families.casper.model import CasperEvent
from bftscope.families.casper.store import CasperStore
from bftscope.sources.base import Frame
from bftscope.store.duckdb import DuckDBStore
from tests.conftest import require_data

FIXTURES = ("casper-docs_node-events_BlockAdded.json", "casper-docs_node-events_DeployAccepted.json",
            "casper-docs_node-events_DeployExpired.json", "casper-docs_node-events_Fault.json",
            "casper-docs_node-events_FinalitySignature.json", "casper-docs_node-events_Step.json",
            "sidecar_legacy_fixtures/raw_legacy_block_added.json",
            "sidecar_legacy_fixtures/raw_legacy_deploy_processed.json",
            "sidecar_legacy_fixtures/raw_legacy_deploy_accepted.json",
            "sidecar_legacy_fixtures/raw_legacy_fault.json",
            "sidecar_legacy_fixtures/raw_legacy_finality_signature.json")  # fmt: skip
ENTITY_ROWS = {"casper_blocks": 2, "casper_deploys_accepted": 2, "casper_deploys_processed": 1,
               "casper_deploys_expired": 1, "casper_faults": 2, "casper_signatures": 2, "casper_steps": 1}  # fmt: skip


@pytest.fixture
def store(settings: Settings) -> Iterator[DuckDBStore]:
    s = DuckDBStore.open(settings.store_path, settings)
    yield s
    s.close()


def _payloads() -> list[bytes]:
    root = require_data("casper-sse")
    return [Path(root, name).read_bytes() for name in FIXTURES]


def _node_stream(source: str, payloads: list[bytes], order: list[int]) -> list[CasperEvent]:
    dec = CasperDecoder(source, "main")
    out: list[CasperEvent] = []
    for i, k in enumerate(order):
        out.extend(dec.feed(Frame(payloads[k], id=str(100 + i))))
    assert not dec.report.skipped, dec.report
    return out


def _counts(store: DuckDBStore, run_id: int) -> dict[str, int]:
    return {t: int(store.query(f"SELECT count(*) FROM {t} WHERE run_id = ?", [run_id])[0][0]) for t in ENTITY_ROWS}


def test_the_same_entities_from_three_nodes_in_any_order_are_stored_once(store: DuckDBStore) -> None:
    payloads = _payloads()
    run = store.get_or_create_run("net:c", "casper")
    cs = CasperStore(store, run.id)
    rng = random.Random(7)
    streams = []
    for node in ("n1:9999", "n2:9999", "n3:9999"):
        order = list(range(len(payloads)))
        rng.shuffle(order)
        streams.append(_node_stream(node, payloads, order))
    merged = [e for trio in zip(*streams, strict=True) for e in trio]
    stored = []
    for i in range(0, len(merged), 5):  # batches that cut across nodes and types
        stored.extend(cs.write(merged[i : i + 5]).stored)
    assert _counts(store, run.id) == ENTITY_ROWS
    assert len(stored) == sum(ENTITY_ROWS.values())
    assert [s.out_id for s in stored] == list(range(1, len(stored) + 1))
    # every node's observation is in the event log, each once
    assert store.query("SELECT count(*) FROM casper_event_log WHERE run_id = ?", [run.id])[0][0] == len(merged)
    assert store.query("SELECT count(*) FROM casper_event_log WHERE run_id = ? AND out_id IS NOT NULL",
                       [run.id])[0][0] == len(stored)  # fmt: skip
    # the stored raw payload is the node's JSON, byte for byte
    raw = store.query("SELECT raw FROM casper_payloads WHERE run_id = ? AND type = 'Fault' ORDER BY out_id", [run.id])
    assert {json.loads(r[0])["Fault"]["era_id"] for r in raw} == {769794, 4591448806312642600}


def test_a_resumed_node_re_sending_its_events_adds_nothing(store: DuckDBStore) -> None:
    payloads = _payloads()
    run = store.get_or_create_run("net:c", "casper")
    cs = CasperStore(store, run.id)
    events = _node_stream("n1:9999", payloads, list(range(len(payloads))))
    first = cs.write(events)
    again = cs.write(events[3:] + events[3:])  # a start_from replay, and the batch repeating itself
    assert len(first.stored) == sum(ENTITY_ROWS.values())
    assert again.stored == [] and again.new_events == 0 and again.duplicate_events == 2 * len(events[3:])
    assert _counts(store, run.id) == ENTITY_ROWS
    # a new CasperStore (a restarted process) continues the out_id sequence and still de-duplicates
    later = CasperStore(store, run.id).write(_node_stream("n2:9999", payloads, [0]))
    assert later.stored == [] and later.duplicate_entities == 1 and later.new_events == 1


def test_processed_before_its_block_and_a_conflicting_block(store: DuckDBStore) -> None:
    payloads = _payloads()
    run = store.get_or_create_run("net:c", "casper")
    cs = CasperStore(store, run.id)
    processed_first = _node_stream("n1:9999", payloads, [7, 6])  # DeployProcessed, then a BlockAdded
    assert [e.type for e in processed_first] == ["DeployProcessed", "BlockAdded"]
    assert len(cs.write(processed_first).stored) == 2
    block = json.loads(payloads[6])
    block["BlockAdded"]["block_hash"] = "ab" * 32  # another hash at the same height
    other = CasperDecoder("n2:9999", "main").feed(Frame(json.dumps(block).encode(), id="1"))
    res = cs.write(other)
    assert res.conflicts == 1 and res.stored == []
    assert store.query("SELECT count(*) FROM casper_blocks WHERE run_id = ?", [run.id])[0][0] == 1
    deploys = store.query("SELECT kind, count(*) FROM casper_block_deploys WHERE run_id = ? GROUP BY kind ORDER BY 1",
                          [run.id])  # fmt: skip
    body = json.loads(payloads[6])["BlockAdded"]["block"]["body"]
    assert dict(deploys) == {"deploy": len(body["deploy_hashes"]), "transfer": len(body["transfer_hashes"])}
    era_end = json.loads(payloads[6])["BlockAdded"]["block"]["header"]
    weights = store.query("SELECT era_id, count(*) FROM casper_era_weights WHERE run_id = ? GROUP BY era_id", [run.id])
    assert weights == [(era_end["era_id"] + 1, len(era_end["era_end"]["next_era_validator_weights"]))]


def test_shutdown_is_recorded_per_node(store: DuckDBStore) -> None:
    run = store.get_or_create_run("net:c", "casper")
    cs = CasperStore(store, run.id)
    shut = [ev for node in ("n1:9999", "n2:9999")
            for ev in CasperDecoder(node, "main").feed(Frame(b'"Shutdown"', id="9"))]  # fmt: skip
    assert len(cs.write(shut + shut).stored) == 2
    assert store.query("SELECT source FROM casper_shutdowns WHERE run_id = ? ORDER BY 1", [run.id]) == [
        ("n1:9999",), ("n2:9999",)]


def test_keys_forgotten_past_the_limit_are_still_checked_in_the_store(store: DuckDBStore) -> None:
    """With a tiny limit of remembered keys, the floor rises many times while heights grow; other nodes then
    send old heights (below the floor: checked in the store) and recent ones (above: in memory), and a
    conflicting block at an old height: each entity stays stored once, and the conflict is refused."""
    from tests.families.casper.gen import _block, chain, decode, proposer

    run = store.get_or_create_run("net:k", "casper")
    cs = CasperStore(store, run.id, known=40)
    for first in range(1, 200, 20):
        cs.write(chain(first, 20, deploys=2, sigs=3))
    floors = {kind: k.floor for kind, k in cs._known.items()}
    assert floors["BlockAdded"] > 100 and floors["FinalitySignature"] > 0  # trimmed past the early heights
    assert all(len(k) <= 40 for k in cs._known.values())
    old = cs.write(chain(1, 30, deploys=2, sigs=3, source="n2:9999"))  # below every floor: the store answers
    recent = cs.write(chain(190, 10, deploys=2, sigs=3, source="n3:9999"))  # above: memory answers
    assert old.stored == [] and old.duplicate_entities == 30 * 6
    assert recent.stored == [] and recent.duplicate_entities == 10 * 6
    forged = _block(5, 0, [], proposer(2))
    forged["BlockAdded"]["block_hash"] = forged["BlockAdded"]["block"]["hash"] = "ff" * 32
    conflict = cs.write(decode("n4:9999", "main", [(forged, 1)]))
    assert conflict.stored == [] and conflict.conflicts == 1
    counts = _counts(store, run.id)
    assert counts["casper_blocks"] == 200 and counts["casper_deploys_processed"] == 400
    assert counts["casper_signatures"] == 600


@pytest.mark.parametrize("seed", range(5))
def test_remembered_keys_cover_everything_above_the_floor(seed: int) -> None:
    """Keys arriving roughly in their range's order (late and early ones mixed in, several keys per value): at
    every step each key added with a value at or above the floor is remembered, at most ``limit`` keys are
    held, and the floor only rises and trails the newest values."""
    from bftscope.families.casper.store import _NEVER, _Known

    rng = random.Random(seed)
    known = _Known(_NEVER, 64, taken=True)
    added: dict[tuple[str], int] = {}
    floors = [known.floor]
    for n in range(3000):
        value = n // 4 + rng.choice([0, 0, 0, -rng.randint(1, 30), rng.randint(1, 5)])
        if value < known.floor:
            continue  # the store answers for it: never added here
        key = (f"k{n}",)
        known.add(key, value)
        added[key] = value
        assert len(known) <= 64
        assert all(k in known for k, v in added.items() if v >= known.floor)
        assert known.holder(value) == key[0]  # (blocks: the store adds one key per height)
        floors.append(known.floor)
    assert floors == sorted(floors) and floors[-1] > 3000 // 4 - 64  # it rose, and stays near the newest


def test_many_keys_of_one_value_stay_remembered() -> None:
    """An era's finality signatures share one range value: as long as one value's keys fit in half the limit,
    the current era's keys stay remembered however many eras pass."""
    from bftscope.families.casper.store import _NEVER, _Known

    known = _Known(_NEVER, 100)
    for era in range(1, 40):
        keys = [(f"b{era}", f"v{i}") for i in range(45)]
        for k in keys:
            known.add(k, era)
        assert known.floor <= era and all(k in known for k in keys)
    assert len(known) <= 100 and known.floor > 30


def test_a_full_table_costs_no_pass_over_its_keys() -> None:
    """Remembering past the limit swaps generations: adding 100,000 keys with a limit of 1,000 hashes each key
    once (the old generation is dropped whole, not filtered)."""
    from bftscope.families.casper.store import _NEVER, _Known

    class Key(tuple):  # counts how often a key is hashed: each dict insert or rebuild hashes it
        hashes = 0

        def __hash__(self) -> int:
            Key.hashes += 1
            return tuple.__hash__(self)

    known = _Known(_NEVER, 1000)
    for n in range(100_000):
        known.add(Key((n,)), n)
    assert Key.hashes == 100_000
    assert len(known) <= 1000 and known.floor > 100_000 - 1000
