"""Validator sets with history: genesis of the real v0.34 testnet, sets recorded only when they change, an
empty fetch that never overwrites, ``validator_update`` rows, and rebuilds that redo the derived part."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from bftscope.config import Settings
from bftscope.families.cometbft.validators import history, priority
from bftscope.families.cometbft.validators.genesis import parse_genesis
from bftscope.families.cometbft.validators.validator import Validator
from bftscope.ingest import derived
from bftscope.ingest.livesink import StoreSink
from bftscope.ingest.pipeline import ingest
from bftscope.store import DuckDBStore
from tests.families.cometbft.parse.test_proto import TM, split_frames

A, B, C, D = ("0A" * 20, "0B" * 20, "0C" * 20, "0D" * 20)


@pytest.fixture
def store(settings: Settings) -> Iterator[DuckDBStore]:
    s = DuckDBStore.open(settings.store_path, settings)
    yield s
    s.close()


@pytest.fixture
def v034(wal_testnet: Path, store: DuckDBStore, settings: Settings) -> tuple[DuckDBStore, int]:
    ingest(store, "v034", [wal_testnet], settings)
    return store, store.get_run("v034").id


def _own_proposers(wal_testnet: Path) -> dict[int, str]:
    """Height → validator whose node signed the round-0 proposal, from the raw WAL records (a node's own
    validator is the signer of its own votes)."""
    timed = TM["tendermint.consensus.TimedWALMessage"]
    out: dict[int, str] = {}
    for i in range(4):
        own, heights = None, []
        for payload in split_frames((wal_testnet / f"node{i}" / "data" / "cs.wal" / "wal").read_bytes()):
            rec = timed.FromString(payload)
            if rec.msg.WhichOneof("sum") == "msg_info" and not rec.msg.msg_info.peer_id:
                msg = rec.msg.msg_info.msg
                if msg.WhichOneof("sum") == "vote":
                    own = msg.vote.vote.validator_address.hex().upper()
                elif msg.WhichOneof("sum") == "proposal" and msg.proposal.proposal.round == 0:
                    heights.append(msg.proposal.proposal.height)
        assert own is not None
        out.update(dict.fromkeys(heights, own))
    return out


def test_the_testnet_set_comes_from_genesis(v034: tuple[DuckDBStore, int], wal_testnet: Path) -> None:
    store, rid = v034
    genesis = json.loads((wal_testnet / "node0" / "config" / "genesis.json").read_text())
    listed = {v["address"]: int(v["power"]) for v in genesis["validators"]}
    at_one = history.set_at(store, rid, 1)
    assert {v.address: v.power for v in at_one} == listed and len(listed) == 4
    # CometBFT's order: power, then address (all powers are 1 here)
    assert [v.address for v in at_one] == sorted(listed) and [v.index for v in at_one] == [0, 1, 2, 3]
    assert history.set_at(store, rid, 77) == at_one and history.set_at(store, rid, 0) == []
    assert history.changes(store, rid) == [(1, sorted(listed), [], {})]
    # the stored priorities of each height say who proposes the next one: the WALs' own proposals agree
    proposers = _own_proposers(wal_testnet)
    assert len(proposers) == 77
    for h in range(1, 77):
        prios = history.priorities_at(store, rid, h)
        assert prios is not None and len(prios) == 4
        state = priority.HeightSet([Validator(v.address, v.power, p, v.index)
                                    for v, p in zip(at_one, prios, strict=True)], "")  # fmt: skip
        assert priority.next_height(state).proposer == proposers[h + 1], h


def test_a_rebuild_redoes_the_derived_sets(v034: tuple[DuckDBStore, int]) -> None:
    store, rid = v034
    before = history.set_at(store, rid, 5), history.priorities_at(store, rid, 5)
    store.execute("DELETE FROM validator_sets WHERE run_id = ?", [rid])
    store.execute("DELETE FROM validator_priorities WHERE run_id = ?", [rid])
    store.set_derived_version(rid, None)  # as any change of the run's events does
    assert derived.ensure_current(store, rid)
    assert (history.set_at(store, rid, 5), history.priorities_at(store, rid, 5)) == before
    assert before[1] is not None


def test_sets_are_recorded_only_when_they_change(store: DuckDBStore) -> None:
    rid = store.get_or_create_run("net", "cometbft").id
    first = [Validator(A, 1), Validator(B, 1), Validator(C, 2)]
    assert history.record_set(store, rid, 10, first)
    assert not history.record_set(store, rid, 20, [Validator(C, 2, 7), Validator(B, 1, -3), Validator(A, 1, -4)])
    assert store.query("SELECT DISTINCT height FROM validator_sets WHERE run_id = ?", [rid]) == [(10,)]
    assert history.priorities_at(store, rid, 20) == [7, -4, -3]  # kept for the height, in set order (C, A, B)
    assert not history.record_set(store, rid, 25, [])  # a failed or empty fetch: the set in force stays
    assert history.record_set(store, rid, 30, [Validator(A, 1), Validator(B, 5), Validator(C, 2)])
    assert [(v.address, v.power, v.index) for v in history.set_at(store, rid, 29)] == [(C, 2, 0), (A, 1, 1),
                                                                                       (B, 1, 2)]  # fmt: skip
    assert [(v.address, v.power) for v in history.set_at(store, rid, 31)] == [(B, 5), (C, 2), (A, 1)]
    assert history.set_at(store, rid, 9) == []
    for bad in ([Validator("xyz", 1)], [Validator(A, 0)], [Validator(A, 1), Validator(A.lower(), 2)]):
        with pytest.raises(ValueError):
            history.record_set(store, rid, 40, bad)
    assert history.set_at(store, rid, 40) == history.set_at(store, rid, 31)
    assert history.changes(store, rid) == [(10, [C, A, B], [], {}), (30, [], [], {B: (1, 5)})]


def test_validator_updates_make_sets_and_rebuilds_keep_fetched_ones(store: DuckDBStore) -> None:
    sink = StoreSink(store, "net", "cometbft")
    ts = 1_700_000_000_000_000_000
    rows = [{"ts": ts + h, "kind": "step", "step": "new_height", "height": h, "round": 0} for h in range(5, 21)]
    rows += [
        {"ts": ts + 30, "kind": "validator_update", "validator": D, "height": 12,
         "extra": json.dumps({"power": 3, "proposer_priority": 0})},
        {"ts": ts + 31, "kind": "validator_update", "validator": A, "height": 15,
         "extra": json.dumps({"power": 0, "proposer_priority": 0})},
        {"ts": ts + 32, "kind": "validator_update", "validator": B, "height": None,  # take-effect height unknown
         "extra": json.dumps({"power": 9, "proposer_priority": 0})},
        {"ts": ts + 33, "kind": "validator_update", "validator": "not-hex", "height": 14,
         "extra": json.dumps({"power": 9, "proposer_priority": 0})},
        {"ts": ts + 34, "kind": "validator_update", "validator": C, "height": 14, "extra": "{not json"},
    ]  # fmt: skip
    sink.write("rpc0", rows)
    sink.flush()
    rid = store.get_run("net").id
    assert history.record_set(store, rid, 5, [Validator(A, 1, 0), Validator(B, 1, 0), Validator(C, 1, 0)])
    counts = derived.build(store, rid)
    assert counts["validator_updates_skipped"] == 3  # counted, never guessed, never a crash
    want = [(5, [A, B, C], [], {}), (12, [D], [], {}), (15, [], [A], {})]
    assert history.changes(store, rid) == want
    assert [(v.address, v.power) for v in history.set_at(store, rid, 13)] == [(D, 3), (A, 1), (B, 1), (C, 1)]
    heights = [h for (h,) in store.query("SELECT height FROM validator_priorities WHERE run_id = ? ORDER BY 1",
                                         [rid])]  # fmt: skip
    assert heights == list(range(5, 21))
    derived.build(store, rid)  # again: the same, and the fetched set at 5 is still there
    assert history.changes(store, rid) == want
    assert store.query("SELECT DISTINCT source FROM validator_sets WHERE run_id = ? AND height = 5", [rid]) == [
        ("rpc",)]


def test_genesis_entries_are_read_or_counted() -> None:
    key = "5DOY/Cb4QwN9ebjC5i5e4+kqlgX/QEvVDRQ6C5eHstQ="  # node0's key in the real testnet's genesis
    got = parse_genesis({"initial_height": "0", "validators": [
        {"pub_key": {"type": "tendermint/PubKeyEd25519", "value": key}, "power": "10"},
        {"address": A, "power": "0"}, {"address": "xyz", "power": "1"}, "junk",
        {"address": B.lower(), "power": 2}, {"address": B, "power": "3"}]})  # fmt: skip
    assert got is not None and got.initial_height == 1
    assert got.members == [("5917B48A13EFF68A47E9C309518DEB3E648749EE", 10), (B, 2)]
    assert got.skipped == {"power missing or not positive": 1, "no address or ed25519 key": 2,
                           "address listed twice": 1}  # fmt: skip
    assert parse_genesis({"validators": []}) is None and parse_genesis([1]) is None
    assert parse_genesis({"initial_height": "7", "validators": [{"address": A, "power": "1"}]}).initial_height == 7
