"""Metrics on the real 4-node v0.34 network, checked against computations made directly from the raw
WAL records with the protobuf runtime (never with bftscope's decoder or SQL)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bftscope.config import Settings
from bftscope.families.cometbft.analytics import answers, participation
from bftscope.ingest.pipeline import ingest
from bftscope.store import DuckDBStore
from tests.families.cometbft.parse.test_proto import TM, split_frames


@pytest.fixture
def v034(wal_testnet: Path, settings: Settings) -> tuple[DuckDBStore, int]:
    store = DuckDBStore.open(settings.store_path, settings)
    ingest(store, "v034", [wal_testnet], settings)
    return store, store.get_run("v034").id


def _ns(t: Any) -> int:
    return int(t.seconds) * 1_000_000_000 + int(t.nanos)


def _raw_vote_latencies(wal: bytes) -> tuple[str, dict[str, list[int]]]:
    """(own validator address, signer address → first-receipt latencies in ns) from raw records."""
    timed = TM["tendermint.consensus.TimedWALMessage"]
    own = None
    first: dict[tuple[int, int, int, str], tuple[int, int]] = {}
    for payload in split_frames(wal):
        rec = timed.FromString(payload)
        if rec.msg.WhichOneof("sum") != "msg_info" or rec.msg.msg_info.msg.WhichOneof("sum") != "vote":
            continue
        v = rec.msg.msg_info.msg.vote.vote
        addr = v.validator_address.hex().upper()
        if not rec.msg.msg_info.peer_id:
            own = own or addr
            continue
        key = (v.height, v.round, v.type, addr)
        t = _ns(rec.time)
        if key not in first or t < first[key][0]:
            first[key] = (t, _ns(v.timestamp))
    assert own is not None
    out: dict[str, list[int]] = {}
    for (_, _, _, addr), (t, signed) in first.items():
        if addr != own:
            out.setdefault(addr, []).append(t - signed)
    return own, out


def test_vote_matrix_equals_raw_wal_computation(v034: tuple[DuckDBStore, int], wal_testnet: Path) -> None:
    store, rid = v034
    got = {(r["signer_validator"], r["receiver"]): r for r in answers.vote_matrix(store, rid)}
    assert len(got) == 12  # every ordered pair of the 4 validators
    labels = {n.validator: n.label for n in store.nodes(rid)}
    checked = 0
    for i in range(4):
        own, lat = _raw_vote_latencies((wal_testnet / f"node{i}" / "data" / "cs.wal" / "wal").read_bytes())
        receiver = labels[own]
        assert receiver == f"node{i}"  # genesis name of the WAL's own validator
        for signer, samples in lat.items():
            ms = np.array(samples, dtype=np.float64) / 1e6
            row = got[(signer, receiver)]
            assert row["count"] == len(samples)
            for q, col in ((50, "p50_ms"), (95, "p95_ms"), (99, "p99_ms")):
                assert abs(row[col] - np.percentile(ms, q)) < 1e-3, (signer, receiver, col)  # 1 µs
            assert abs(row["max_ms"] - ms.max()) < 1e-3
            checked += 1
    assert checked == 12


def test_participation_has_no_missed_votes(v034: tuple[DuckDBStore, int]) -> None:
    store, rid = v034
    part = participation.participation(store, rid)
    assert len(part["validators"]) == 4
    assert part["missed"] == []
    for counts in part["validators"].values():
        # every vote of heights 1–77 was seen; "late" ones reached most receivers after they had moved on
        assert counts["voted"] + counts["late"] == 2 * 77 and counts["nil"] == 0 and counts["missing"] == 0
        assert 0 < counts["late"] < counts["voted"]
    assert sum(c["late"] for c in part["validators"].values()) == len(part["late"])
    for e in part["edge"]:
        assert "edge of the capture" in e["reason"]


def test_links_and_skew(v034: tuple[DuckDBStore, int]) -> None:
    store, rid = v034
    links = answers.link_latency(store, rid, by_type=False)
    assert len(links) == 12
    assert all(r["delivery_rate"] == 1.0 and r["matched_by"] == "logical" for r in links)
    assert all(90 < r["p50_ms"] < 130 for r in links)
    skew = answers.clock_skew(store, rid)
    assert len(skew) == 6
    # One host: the four clocks agree. WAL "send" times are when the sender's state machine took its own
    # vote, before a gossip sleep, so vote minima wander and some pairs are not determinable; whatever
    # the status, no interval may exclude the true offset 0, and no estimate may claim more than it has.
    for s in skew:
        assert s["bounds_ms"][0] <= 0 <= s["bounds_ms"][1]
        assert s["interval_ms"][0] <= 0 <= s["interval_ms"][1], s
        assert s["status"] in ("estimated", "not determinable")
        if s["status"] == "estimated":
            assert abs(s["b_ahead_of_a_ms"]) < 10
        assert set(s["evidence"]["message_types"]) == {"vote", "proposal", "block_part"}
    assert {s["status"] for s in skew} == {"estimated", "not determinable"}
    nodes = answers.clock_offsets(store, rid)
    assert len(nodes) == 4 and sum(n["is_reference"] for n in nodes) == 1
    for n in nodes:
        assert n["interval_ms"] is not None and n["interval_ms"][0] <= 0 <= n["interval_ms"][1], n
    for r in links:  # the skew-corrected interval holds the uncorrected median: the clocks agree
        assert r["corrected_p50_interval_ms"][0] <= r["p50_ms"] <= r["corrected_p50_interval_ms"][1]
