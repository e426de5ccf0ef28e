"""A node known only by its log (no WAL): the simulator's CometBFT JSON debug logs, whose truth is known, plus a
genesis.json written from that truth."""

from __future__ import annotations

import base64
import json
from collections import Counter
from pathlib import Path

from bftscope.families.cometbft.replay.recording import read_recording
from bftscope.families.cometbft.replay.timeline import build_timeline
from bftscope.families.cometbft.synthetic.network import build_config, simulate


def test_a_log_only_node_replays_its_rounds_votes_and_blocks(tmp_path: Path) -> None:
    cfg = build_config(nodes=4, heights=6, seed=3, base_latency_ms=40.0, spread_ms=60.0, slow_node=None, silent=[],
                       drop_rate=0.0, escalations=[], target_bytes=None)  # fmt: skip
    simulate(cfg, tmp_path / "net")
    truth = json.loads((tmp_path / "net" / "ground_truth.json").read_text())
    genesis = {
        "genesis_time": truth["genesis_time"], "chain_id": truth["chain_id"], "initial_height": "1",
        "validators": [{"address": n["validator_address"], "power": "10", "name": n["moniker"],
                        "pub_key": {"type": "tendermint/PubKeyEd25519",
                                    "value": base64.b64encode(bytes.fromhex(n["pub_key"])).decode()}}
                       for n in truth["nodes"]],
    }  # fmt: skip
    (tmp_path / "my-genesis.json").write_text(json.dumps(genesis))
    rec = read_recording([tmp_path / "net" / "node2.log", tmp_path / "my-genesis.json"])
    assert not rec.from_wal and rec.chain_id == truth["chain_id"]
    tl = build_timeline(rec)
    address = [n["validator_address"] for n in truth["nodes"]]
    for h in truth["heights"]:
        block = tl.blocks[h["height"]]
        assert block.block_id.hash == h["block_hash"]
        assert block.proposer == address[h["proposer"]]  # the proposer the log names
    votes = Counter((e.vote.height, e.vote.type) for e in tl.events if e.vote is not None)
    # Every prevote, and the precommits the node added before committing (later ones go to its last commit).
    # At least the +2/3 of each kind that moved the node on (3 of 4 equal powers); the log's later votes of a
    # height may come after the node left it.
    assert all(votes[(h, t)] >= 3 for h in range(1, 7) for t in (1, 2))
    assert sum(votes.values()) >= 40
    assert all(e.vote.validator in address for e in tl.events if e.vote is not None)
    # "Added vote to last precommits" names no validator: not served, and counted.
    assert tl.skipped["vote without height, round, type or validator"] > 0
