"""CometBFT's proposer rule against the real testnet and against hand-worked sets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bftscope.config import Settings
from bftscope.families.cometbft.validators import priority
from bftscope.ingest.pipeline import ingest
from bftscope.store import open_store


def test_equal_powers_take_turns_in_address_order() -> None:
    hs = priority.genesis([("BB", 1), ("AA", 1), ("CC", 1)])
    assert [v.address for v in hs.validators] == ["AA", "BB", "CC"]
    assert [hs.proposer for hs in priority.schedule(hs, 6)] == ["AA", "BB", "CC", "AA", "BB", "CC"]
    assert priority.proposer_at(hs, 1) == "BB"  # round 1 of height 1: one selection further


def test_weights_give_proposals_in_proportion() -> None:
    hs = priority.genesis([("0A", 3), ("0B", 1)])
    assert [v.address for v in hs.validators] == ["0A", "0B"]  # power first
    picks = [h.proposer for h in priority.schedule(hs, 8)]
    assert picks.count("0A") == 6 and picks.count("0B") == 2
    # priorities stay centred and inside the window of twice the total power
    for h in priority.schedule(hs, 50):
        prios = [v.proposer_priority or 0 for v in h.validators]
        assert max(prios) - min(prios) <= 2 * 4 + 4


def test_hand_worked_first_steps() -> None:
    # powers 3,1 (total 4). Genesis: both 0 → +power: 3,1 → A chosen, 3-4 = -1 → (-1, 1)
    hs = priority.genesis([("0A", 3), ("0B", 1)])
    assert hs.proposer == "0A" and [v.proposer_priority for v in hs.validators] == [-1, 1]
    # centre: avg 0 → +power: 2, 2 → tie, lower address 0A → (2-4, 2) = (-2, 2)
    nxt = priority.next_height(hs)
    assert nxt.proposer == "0A" and [v.proposer_priority for v in nxt.validators] == [-2, 2]
    # +power: 1, 3 → B → (1, -1)
    third = priority.next_height(nxt)
    assert third.proposer == "0B" and [v.proposer_priority for v in third.validators] == [1, -1]


def test_empty_set_is_refused() -> None:
    with pytest.raises(ValueError):
        priority.next_height(priority.HeightSet([], ""))
    with pytest.raises(ValueError):
        priority.genesis([("AA", 0)])  # no member with power


def test_real_testnet_proposers_follow_the_rule(wal_testnet: Path, settings: Settings) -> None:
    """Every proposal a node of the real v0.34 testnet made itself (its WAL's own proposal messages) is by the
    validator the rule designates for that height and round, computed from genesis.json alone."""
    store = open_store(settings)
    try:
        ingest(store, "wal", [wal_testnet], settings, workers=1)
        own = store.query(
            "SELECT DISTINCT e.height, e.round, n.validator FROM events e JOIN nodes n"
            " ON n.run_id = e.run_id AND n.node = e.node"
            " WHERE e.kind = 'msg_internal' AND e.msg_type = 'proposal' ORDER BY 1, 2"
        )
    finally:
        store.close()
    genesis = json.loads((wal_testnet / "node0" / "config" / "genesis.json").read_text())
    start = priority.genesis((v["address"], int(v["power"])) for v in genesis["validators"])
    first = max(1, int(genesis.get("initial_height") or 1))  # CometBFT reads 0 as 1
    sets = priority.schedule(start, max(h for h, _, _ in own) - first + 1)
    assert len(own) > 60
    for height, round_, validator in own:
        assert priority.proposer_at(sets[height - first], round_) == validator, (height, round_)
