"""The network simulator: its lines look like the real CometBFT 1.x lines, its bytes decode to what the
ground truth says, and one-hop delays recovered from its logs are exactly the injected ones."""

from __future__ import annotations

import base64
import json
import statistics
from collections import defaultdict, deque
from pathlib import Path
from typing import Any

import pytest

from bftscope.families.cometbft.parse.proto import decode_consensus_message
from bftscope.families.cometbft.synthetic import encode
from bftscope.families.cometbft.synthetic.lines import go_duration, rfc3339
from bftscope.families.cometbft.synthetic.network import GroundTruth, SimConfig, build_config, simulate

REAL_VOTE_HEX = (
    "32B8010AB5010802100422480A20C3C61C93E975E4F6321BA3ACFBBCA6CB9678959A5B7F932A8D9B21BD5E42AF8C12240801122087DFE2"
    "37E181CBB6E93EB06A7B60A205BC171E2950116B9ACF19D58FBCAA031B2A0B08C9CC93C20610C094A675321447F2A97347636F3F163AA0"
    "A80EBC148AEB00CC64380342402F889050988E20DD97116E9DD84ED0CB065F65C2F9E8B05A5CCCC321BAB7C0C777D106DFD794FE6325"
    "3D574210BA8CD13B2C2166A6B07FD2F9901F50EBFA110B"
)


def _run(tmp_path: Path, name: str, cfg: SimConfig) -> tuple[Path, GroundTruth]:
    out = tmp_path / name
    return out, simulate(cfg, out)


def _lines(out: Path, node: int) -> list[dict[str, Any]]:
    return [json.loads(x) for x in (out / f"node{node}.log").read_text(encoding="utf-8").splitlines()]


def _ts_us(text: str) -> int:
    """RFC 3339 (≤ 6 fraction digits) → Unix µs, independently of the simulator's formatter."""
    from datetime import datetime

    dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return int(dt.timestamp()) * 1_000_000 + dt.microsecond


def _hops(out: Path, truth: GroundTruth) -> tuple[dict[tuple[int, int], list[int]], int]:
    """Match every Received bytes with its Send/TrySend (same sender, receiver and bytes, FIFO).

    Returns the (receive ts − send ts) of each delivered message by (sender, receiver), and how
    many sends were never received.
    """
    index = {nd["node_id"]: nd["index"] for nd in truth.nodes}
    sends: dict[tuple[int, int, bytes], deque[int]] = defaultdict(deque)
    recvs: list[tuple[int, int, bytes, int]] = []
    for nd in truth.nodes:
        me = nd["index"]
        for line in _lines(out, me):
            if line["_msg"] in ("Send", "TrySend"):
                peer = index[line["peer"].split("@")[0]]
                sends[(me, peer, bytes.fromhex(line["msgBytes"]))].append(_ts_us(line["ts"]))
            elif line["_msg"] == "Received bytes":
                peer = index[line["peer"].split("@")[0]]
                recvs.append((peer, me, base64.b64decode(line["msgBytes"]), _ts_us(line["ts"])))
    hops: dict[tuple[int, int], list[int]] = defaultdict(list)
    for sender, receiver, raw, ts in recvs:
        queue = sends[(sender, receiver, raw)]
        hops[(sender, receiver)].append(ts - queue.popleft())
    return hops, sum(len(q) for q in sends.values())


# --- the encoder ----------------------------------------------------------------------------------


def test_encoder_reproduces_real_payloads_byte_for_byte() -> None:
    real = bytes.fromhex(REAL_VOTE_HEX)
    msg = decode_consensus_message(real)
    assert msg.signer_ts is not None and msg.block_hash is not None and msg.validator is not None
    vote = encode.vote(
        encode.PRECOMMIT, 4, 0, bytes.fromhex(msg.block_hash), 1,
        bytes.fromhex("87DFE237E181CBB6E93EB06A7B60A205BC171E2950116B9ACF19D58FBCAA031B"),
        msg.signer_ts, bytes.fromhex(msg.validator), 3, real[-64:],
    )  # fmt: skip
    assert encode.msg_vote(vote) == real
    assert encode.msg_new_round_step(1, 0, 1, 0, -1) == base64.b64decode("Cg8IARgBKP///////////wE=")
    assert encode.msg_has_vote(2, 0, encode.PREVOTE, 2) == base64.b64decode("OgYIAhgBIAI=")


def test_encoder_edge_cases_decode_to_the_intended_values() -> None:
    assert encode.varint(-1) == b"\xff" * 9 + b"\x01"
    assert encode.varint(300) == b"\xac\x02"
    assert encode.field_varint(3, 0) == b""  # proto3 default: omitted
    nil = encode.vote(encode.PREVOTE, 7, 2, b"", 0, b"", 1_700_000_000_123_456_000, b"\x01" * 20, 0, b"\x02" * 64)
    assert b"\x22\x02\x12\x00" in nil  # non-nullable BlockID{PartSetHeader{}}
    m = decode_consensus_message(encode.msg_vote(nil))
    assert (m.msg_type, m.height, m.round, m.vote_type, m.block_hash) == ("vote", 7, 2, "prevote", None)
    assert (m.validator_index, m.signer_ts, m.validator) == (0, 1_700_000_000_123_456_000, "01" * 20)
    p = encode.proposal(9, 1, -1, b"\xab" * 32, 3, b"\xcd" * 32, 1_700_000_000_000_001_000, b"\x03" * 64)
    m = decode_consensus_message(encode.msg_proposal(p))
    assert (m.msg_type, m.height, m.round, m.block_hash, m.signer_ts) == (
        "proposal", 9, 1, "AB" * 32, 1_700_000_000_000_001_000,
    )  # fmt: skip
    assert json.loads(m.extra or "") == {"pol_round": -1, "parts_total": 3, "parts_hash": "CD" * 32}
    part = encode.msg_block_part(9, 1, 2, b"\x00" * 500, 3, 2, b"\x11" * 32, [b"\x22" * 32, b"\x33" * 32])
    m = decode_consensus_message(part)
    assert (m.msg_type, m.height, m.round, m.part_index) == ("block_part", 9, 1, 2)
    assert json.loads(m.extra or "") == {"part_bytes": 500}
    m = decode_consensus_message(encode.msg_has_proposal_block_part(9, 1, 2))
    assert (m.msg_type, m.height, m.round, m.part_index) == ("has_proposal_block_part", 9, 1, 2)
    m = decode_consensus_message(encode.msg_new_valid_block(9, 1, 3, b"\xcd" * 32, [True, False, True], False))
    assert (m.msg_type, m.height, m.round, m.block_hash) == ("new_valid_block", 9, 1, "CD" * 32)
    m = decode_consensus_message(encode.msg_new_round_step(9, 1, 5, 2, 0))
    assert (m.msg_type, m.height, m.round, m.step) == ("new_round_step", 9, 1, "prevote_wait")


def test_go_formats() -> None:
    assert [go_duration(x * 1_000_000) for x in (3000, 1500, 0, 120_000, 3_600_000, -1)] == [
        "3s", "1.5s", "0s", "2m0s", "1h0m0s", "-1ms",
    ]  # fmt: skip
    assert go_duration(998_734_000) == "998.734ms" and go_duration(12_000) == "12µs" and go_duration(5) == "5ns"
    assert rfc3339(1749345862642940) == "2025-06-08T01:24:22.64294Z"
    assert rfc3339(1749345861000000) == "2025-06-08T01:24:21Z"


# --- the lines ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, GroundTruth]:
    """One run with most features: escalation, late precommits, a slow node, clock offsets, jitter."""
    cfg = SimConfig(
        nodes=5, heights=7, seed=11, round_escalations=[3], jitter_ms=1.0,
        clock_offset_ms=[0.0, 12.5, -7.25, 3.0, 0.0],
    ).misconfigured(4)  # fmt: skip
    out = tmp_path_factory.mktemp("sim") / "mixed"
    return out, simulate(cfg, out)


def test_lines_are_sorted_key_json_in_time_order(mixed: tuple[Path, GroundTruth]) -> None:
    out, truth = mixed
    for nd in truth.nodes:
        text = (out / nd["file"]).read_text(encoding="utf-8")
        assert text.endswith("\n")
        last = 0
        for raw in text.splitlines():
            keys = list(json.loads(raw, object_pairs_hook=lambda pairs: pairs))
            names = [k for k, _ in keys]
            assert names == sorted(names), raw
            obj = json.loads(raw)
            ts = _ts_us(obj["ts"])
            assert ts >= last, raw
            last = ts
            frac = obj["ts"][20:-1] if "." in obj["ts"] else ""
            assert not frac.endswith("0") and len(frac) <= 6  # RFC3339Nano: trailing zeros trimmed
        first = [json.loads(x)["_msg"] for x in text.splitlines()[:2]]
        assert first == ["This node is a validator", "P2P Node ID"]


def test_every_real_message_has_the_real_keys_and_value_types(
    mixed: tuple[Path, GroundTruth], json_debug_lines: Path
) -> None:
    out, truth = mixed
    real: dict[str, dict[str, Any]] = {}
    for raw in json_debug_lines.read_text().splitlines():
        obj = json.loads(raw)
        real.setdefault(obj["_msg"], obj)
    seen: dict[str, dict[str, Any]] = {}
    for nd in truth.nodes:
        for obj in _lines(out, nd["index"]):
            if obj["_msg"] in real and obj["_msg"] not in seen:
                seen[obj["_msg"]] = obj
                want = {k: type(v) for k, v in real[obj["_msg"]].items()}
                assert {k: type(v) for k, v in obj.items()} == want, obj["_msg"]
    assert set(seen) == set(real)
    assert set(seen["Sending vote message"]["ps"]["round_state"]) == set(
        real["Sending vote message"]["ps"]["round_state"]
    )
    assert set(seen["Read PacketMsg"]["packet"]) == {"channel_id", "eof", "data"}
    block = seen["Committed block"]["block"]
    assert "    Time:           " in block and "SentTime" not in block


def test_p2p_bytes_decode_to_what_the_ground_truth_says(mixed: tuple[Path, GroundTruth]) -> None:
    out, truth = mixed
    index = {nd["node_id"]: nd["index"] for nd in truth.nodes}
    addr = {nd["index"]: nd["validator_address"] for nd in truth.nodes}
    heights = {h["height"]: h for h in truth.heights}
    kinds: set[str] = set()
    for nd in truth.nodes:
        me = nd["index"]
        for line in _lines(out, me):
            if line["_msg"] in ("Send", "TrySend"):
                raw, sender = bytes.fromhex(line["msgBytes"]), me
                assert line["msgBytes"] == line["msgBytes"].upper()
                channel = line["channel"]
            elif line["_msg"] == "Received bytes":
                raw, sender = base64.b64decode(line["msgBytes"]), index[line["peer"].split("@")[0]]
                channel = line["chID"]
            else:
                continue
            m = decode_consensus_message(raw)
            kinds.add(m.msg_type)
            assert channel == {"vote": 34, "proposal": 33, "block_part": 33}.get(m.msg_type, 32)
            h = heights.get(m.height or 0)
            if m.msg_type == "vote":
                assert m.validator == addr[m.validator_index or 0]
                if h is not None and m.round == h["commit_round"] and m.block_hash is not None:
                    assert m.block_hash == h["block_hash"]
                if m.validator_index == sender and m.round is not None and h is not None:
                    assert sender in h["signed"][m.vote_type or ""][str(m.round)]
            elif m.msg_type == "proposal" and h is not None and m.round == h["commit_round"]:
                assert m.block_hash == h["block_hash"]
                assert m.signer_ts == _ts_us(h["block_time"]) * 1000
                assert sender == h["proposer"] or line["_msg"] == "Received bytes"
    assert {"vote", "proposal", "block_part", "has_vote", "new_round_step", "has_proposal_block_part"} <= kinds


def test_one_hop_delay_is_exactly_the_matrix_without_jitter_or_offsets(tmp_path: Path) -> None:
    n = 5
    matrix = [[0.0 if i == j else 10.0 + 7.5 * i + 3.25 * j for j in range(n)] for i in range(n)]
    out, truth = _run(tmp_path, "exact", SimConfig(nodes=n, heights=4, seed=5, latency_ms=matrix, jitter_ms=0.0))
    hops, unmatched = _hops(out, truth)
    assert unmatched == 0
    assert set(hops) == {(i, j) for i in range(n) for j in range(n) if i != j}
    for (i, j), deltas in hops.items():
        assert set(deltas) == {round(matrix[i][j] * 1000)}
    assert truth.effective_latency_ms == matrix


def test_offsets_and_throttle_are_the_only_other_terms(tmp_path: Path) -> None:
    n = 4
    offsets = [0.0, 40.0, -25.5, 3.001]
    cfg = SimConfig(
        nodes=n, heights=3, seed=6, jitter_ms=0.0, clock_offset_ms=offsets, flush_throttle_ms=[0, 10, 0, 200]
    )
    out, truth = _run(tmp_path, "offsets", cfg)
    hops, _ = _hops(out, truth)
    throttle = [0, 10, 0, 200]
    for (i, j), deltas in hops.items():
        floor = round((truth.latency_ms[i][j] + offsets[j] - offsets[i]) * 1000)
        if not throttle[i]:
            assert set(deltas) == {floor}, (i, j)
            continue
        # CometBFT's flush timer: the message that arms it waits it all, later ones join its flush
        assert floor <= min(deltas) and max(deltas) == floor + throttle[i] * 1000, (i, j)
        assert min(deltas) < floor + throttle[i] * 1000 and len(set(deltas)) > 3, (i, j)
    assert truth.effective_latency_ms[3][0] == round(truth.latency_ms[3][0] + 200, 3)


def test_jitter_keeps_each_pair_median_on_the_matrix(tmp_path: Path) -> None:
    out, truth = _run(tmp_path, "jitter", SimConfig(nodes=4, heights=8, seed=7, jitter_ms=2.0, base_latency_ms=40.0))
    hops, _ = _hops(out, truth)
    spread = set()
    for (i, j), deltas in hops.items():
        spread.update(deltas)
        want = truth.effective_latency_ms[i][j] * 1000
        assert abs(statistics.median(deltas) - want) <= 0.05 * want, (i, j)
        assert all(abs(d - want) <= 6_000 + 1 for d in deltas)  # clipped at 3σ
    assert len(spread) > 20


def test_vote_timestamp_is_the_signers_clock(mixed: tuple[Path, GroundTruth]) -> None:
    out, truth = mixed
    for nd in truth.nodes:
        for line in _lines(out, nd["index"]):
            if line["_msg"] == "Signed and pushed vote":
                assert line["vote"].endswith(f"@ {line['ts']}}}")


# --- scenarios ------------------------------------------------------------------------------------


def test_same_seed_same_bytes(tmp_path: Path) -> None:
    cfg = build_config(nodes=4, heights=4, seed=9, slow_node=1, escalations=[2], drop_rate=0.02, clock_skew_ms=20)
    a, ta = _run(tmp_path, "a", cfg)
    b, _ = _run(tmp_path, "b", SimConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))))
    for name in [*ta.files, "ground_truth.json"]:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    c, _ = _run(tmp_path, "c", build_config(nodes=4, heights=4, seed=10))
    assert (a / "node0.log").read_bytes() != (c / "node0.log").read_bytes()


def test_silent_validator_never_signs(tmp_path: Path) -> None:
    out, truth = _run(tmp_path, "silent", SimConfig(nodes=4, heights=6, seed=3, silent_validators=[2]))
    silent_addr = truth.nodes[2]["validator_address"]
    for nd in truth.nodes:
        for line in _lines(out, nd["index"]):
            if nd["index"] == 2:
                assert line["_msg"] not in ("Signed and pushed vote", "Signed proposal")
            if line["_msg"] in ("Send", "Received bytes"):
                raw = bytes.fromhex(line["msgBytes"]) if "channel" in line else base64.b64decode(line["msgBytes"])
                m = decode_consensus_message(raw)
                assert m.msg_type not in ("vote",) or m.validator != silent_addr
    assert all(2 in h["missing_votes"]["precommit"] for h in truth.heights)
    assert truth.nodes[2]["silent"] is True
    # the silent node still runs: it commits every height
    assert all(any(c["node"] == 2 for c in h["commits"]) for h in truth.heights)
    # heights it should have proposed need a second round
    assert all(h["commit_round"] == 1 for h in truth.heights if h["proposers"][0] == 2)


def test_round_escalation_goes_through_the_wait_steps_to_round_one(mixed: tuple[Path, GroundTruth]) -> None:
    out, truth = mixed
    h3 = next(h for h in truth.heights if h["height"] == 3)
    assert h3["commit_round"] == 1 and h3["escalated"] and len(h3["proposers"]) == 2
    assert all(h["commit_round"] == 0 for h in truth.heights if h["height"] != 3)
    msgs = defaultdict(set)
    for line in _lines(out, 0):
        if line.get("height") == 3:
            msgs[line["_msg"]].add(line.get("round"))
    assert 1 in msgs["Entering new round"] and 1 in msgs["Entering propose step"]
    assert 0 in msgs["Entering prevote wait step"] and 0 in msgs["Entering precommit wait step"]
    fired = {line["step"] for line in _lines(out, 0) if line["_msg"] == "Timed out" and line["height"] == 3}
    assert {"RoundStepPropose", "RoundStepPrevoteWait", "RoundStepPrecommitWait"} <= fired or {
        "RoundStepPrevoteWait", "RoundStepPrecommitWait",
    } <= fired  # fmt: skip


def test_misconfigured_node_shows_its_timeout_commit(mixed: tuple[Path, GroundTruth]) -> None:
    out, truth = mixed
    assert truth.nodes[4]["misconfigured"] and truth.nodes[4]["timeout_commit_ms"] == 2000.0
    assert truth.nodes[4]["flush_throttle_ms"] == 200.0 and truth.nodes[0]["flush_throttle_ms"] == 10.0

    def commit_waits(node: int) -> list[float]:
        return [
            _ms(line["dur"])
            for line in _lines(out, node)
            if line["_msg"] == "Scheduled timeout" and line["step"] == "RoundStepNewHeight" and line["height"] > 1
        ]

    slow, normal = commit_waits(4), commit_waits(0)
    assert slow and normal
    assert all(1900 < d <= 2000 for d in slow)
    assert all(900 < d <= 1000 for d in normal)
    for j in range(4):
        assert truth.effective_latency_ms[4][j] == round(truth.latency_ms[4][j] + 200, 3)


def _ms(dur: str) -> float:
    return float(dur[:-2]) if dur.endswith("ms") else float(dur[:-1]) * 1000


def test_lost_messages_are_counted_and_the_chain_still_commits(tmp_path: Path) -> None:
    cfg = SimConfig(nodes=5, heights=6, seed=4, drop_rate=0.05, jitter_ms=0.0)
    out, truth = _run(tmp_path, "drops", cfg)
    assert [h["height"] for h in truth.heights] == list(range(1, 7))
    dropped = sum(m["dropped"] for m in truth.messages)
    sent = sum(m["sent"] for m in truth.messages)
    assert 0.02 * sent < dropped < 0.08 * sent
    _, unmatched = _hops(out, truth)
    assert unmatched == dropped
    assert any(h["dropped"] for h in truth.heights)


def test_target_bytes_adds_heights_until_the_size_is_reached(tmp_path: Path) -> None:
    out, truth = _run(tmp_path, "target", SimConfig(nodes=4, heights=1, seed=2, target_bytes=3_000_000))
    size = sum(truth.files.values())
    assert 3_000_000 <= size < 4_500_000
    assert len(truth.heights) > 1
    saved = GroundTruth.load(out / "ground_truth.json")
    assert saved == truth and "heights" in saved.summary()


def test_invalid_configs_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="silent"):
        simulate(SimConfig(nodes=3, silent_validators=[0]), tmp_path / "x")
    with pytest.raises(ValueError, match="latency_ms"):
        simulate(SimConfig(nodes=3, latency_ms=[[0.0]]), tmp_path / "y")
    with pytest.raises(ValueError, match="timeout_commit"):
        simulate(SimConfig(nodes=3, timeout_commit=[1000.0]), tmp_path / "z")
    assert SimConfig(timeout_commit="1.5s", nodes=2).timeout_commit == "1.5s"
