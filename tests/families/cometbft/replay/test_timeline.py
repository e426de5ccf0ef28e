"""The timeline of RPC events built from each node of the real v0.34 testnet's WAL."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import pytest

from bftscope.errors import InputError
from bftscope.families.cometbft.replay.model import ABSENT, COMMIT
from bftscope.families.cometbft.replay.recording import read_recording
from bftscope.families.cometbft.replay.timeline import build_timeline
from tests.conftest import require_data
from tests.families.cometbft.replay.replaydata import NODES, TESTNET, timeline

DROPPED = "5917B48A13EFF68A47E9C309518DEB3E648749EE"  # node0's validator


def _vote_keys(node: str, drop: str | None = None) -> list[tuple[int, int, int, str]]:
    return [(e.vote.height, e.vote.round, e.vote.type, e.vote.validator)
            for e in timeline(node, drop).events if e.vote is not None]  # fmt: skip


@pytest.mark.parametrize("node", NODES)
def test_every_vote_of_every_complete_height_once_with_its_signature(node: str) -> None:
    tl = timeline(node)
    keys = _vote_keys(node)
    assert len(keys) == len(set(keys))  # each vote the node added appears once
    heights = sorted(tl.blocks)
    assert heights == list(range(1, 78))
    validators = [v.address for v in tl.validators]
    # Every validator's precommit of every height the recording holds whole (round 0 throughout): a precommit
    # is added at its height or the next (the last commit).
    want = {(h, 0, 2, v) for h in range(2, 77) for v in validators}
    assert want <= set(keys)
    # A vote is added when it reaches the node while it is at the vote's height (a precommit: or the next one).
    # The WAL's first record of each vote, with the node's height from its step records:
    height, first = 0, {}
    for row in read_recording([require_data(TESTNET)], node).rows:
        if row["kind"] == "step":
            height = row["height"]
        elif row["msg_type"] == "vote":
            key = (row["height"], row["round"], 1 if row["vote_type"] == "prevote" else 2, row["validator"])
            first.setdefault(key, height)
    added = {k for k, at in first.items() if k[0] == at or (k[0] == at - 1 and k[2] == 2)}
    assert set(keys) == added
    assert len(added) > 0.95 * len(first)
    votes = [e.vote for e in tl.events if e.vote is not None]
    assert all(len(v.signature) == 64 and v.block_id.parts_total == 1 and len(v.block_id.parts_hash) == 64
               for v in votes if v.block_id.hash)  # fmt: skip
    # A late prevote of the previous height is not added by CometBFT, so it is not an event; it is counted.
    assert tl.skipped["vote not for the node's height (not added by CometBFT)"] > 0


def test_the_four_nodes_agree_on_every_block() -> None:
    tls = [timeline(n) for n in NODES]
    for h in range(1, 78):
        assert len({tl.blocks[h].block_id for tl in tls}) == 1, h
        assert len({tl.blocks[h].proposer for tl in tls}) == 1, h
    for h in range(2, 77):  # BFT time from the signed precommit timestamps: equal wherever the commits are
        assert len({tl.blocks[h].time_ns for tl in tls}) == 1, h


def test_a_node_proposes_the_blocks_the_priority_rule_gives_it() -> None:
    tl = timeline("node0")
    own = tl.own_address
    assert own == DROPPED
    rows = read_recording([require_data(TESTNET)], "node0").rows
    proposed = {r["height"] for r in rows if r["kind"] == "msg_internal" and r["msg_type"] == "proposal"}
    assert proposed
    assert {h for h, b in tl.blocks.items() if b.proposer == own} == proposed


def test_events_of_a_round_come_in_consensus_order() -> None:
    tl = timeline("node1")
    kinds_at: dict[int, list[str]] = {}
    for e in tl.events:
        if e.kind != "Vote":
            kinds_at.setdefault(e.height, []).append(e.kind if e.kind != "NewRoundStep" else e.step)
    assert kinds_at[5][:4] == ["RoundStepNewHeight", "NewRound", "RoundStepPropose", "CompleteProposal"]
    assert kinds_at[5][-2:] == ["RoundStepCommit", "NewBlock"]


def test_dropped_validator_never_votes_and_is_absent_from_every_commit() -> None:
    full, dropped = timeline("node2"), timeline("node2", DROPPED)
    assert not [k for k in _vote_keys("node2", DROPPED) if k[3] == DROPPED]
    assert Counter(k[3] for k in _vote_keys("node2"))[DROPPED] > 100
    i = [v.address for v in dropped.validators].index(DROPPED)
    for h, commit in dropped.commits.items():
        assert commit.sigs[i].flag == ABSENT
        assert commit.sigs[i].validator == ""
        others = [s.flag for j, s in enumerate(commit.sigs) if j != i]
        assert others == [s.flag for j, s in enumerate(full.commits[h].sigs) if j != i]
        assert full.commits[h].block_id == commit.block_id
    assert sum(c.sigs[i].flag == COMMIT for c in full.commits.values()) > 70


def test_an_unknown_dropped_validator_is_refused() -> None:
    rec = read_recording([require_data(TESTNET)], "node0")
    with pytest.raises(ValueError, match="not a validator"):
        build_timeline(rec, drop_validator="00" * 20)


def test_bad_paths_say_why(tmp_path: Path) -> None:
    root = require_data(TESTNET)
    with pytest.raises(InputError, match="several nodes"):
        read_recording([root])
    with pytest.raises(InputError, match="no node 'node7'"):
        read_recording([root], "node7")
    with pytest.raises(InputError, match="no such file"):
        read_recording([tmp_path / "missing"])
    with pytest.raises(InputError, match="no WAL or log"):
        read_recording([tmp_path])
    lone = tmp_path / "wal"
    shutil.copy(root / "node0" / "data" / "cs.wal" / "wal", lone)  # outside its home: no genesis beside it
    with pytest.raises(InputError, match=r"genesis\.json"):
        read_recording([lone])
    genesis = tmp_path / "genesis.json"
    shutil.copy(root / "node0" / "config" / "genesis.json", genesis)
    rec = read_recording([lone, genesis])
    assert rec.from_wal and rec.chain_id == "chain-H5iqVd" and len(rec.validators) == 4
    genesis.write_text('{"validators": []}')
    with pytest.raises(InputError, match="without validators"):
        read_recording([lone, genesis])
    genesis.write_text('{"validators": [{"address": "12; DROP", "power": "1", "pub_key": {"type": "t", "value": ""}}]}')
    with pytest.raises(InputError, match="not 20 bytes of hex"):
        read_recording([lone, genesis])
    # An entry without an address: CometBFT's address of its ed25519 key (node0's, from the real genesis).
    key = {"type": "tendermint/PubKeyEd25519", "value": "5DOY/Cb4QwN9ebjC5i5e4+kqlgX/QEvVDRQ6C5eHstQ="}
    genesis.write_text(json.dumps({"validators": [{"power": "1", "pub_key": key}, {"power": "0", "pub_key": key}]}))
    assert [v.address for v in read_recording([lone, genesis]).validators] == [DROPPED]
