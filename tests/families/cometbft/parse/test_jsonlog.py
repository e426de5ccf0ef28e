"""CometBFT JSON logs: every real line becomes the expected event, field by field; bad input is counted."""

from __future__ import annotations

import base64
import io
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import xxhash
from hypothesis import given, settings
from hypothesis import strategies as st

from bftscope.families.cometbft.parse.jsonlog import JsonLogFormat
from bftscope.ingest.parsereport import ParseReport
from bftscope.model import ROW_COLUMNS
from tests.conftest import require_data


def _ns(text: str) -> int:
    """Independent RFC 3339 → ns (datetime handles ≤ 6 fraction digits, enough for these lines)."""
    dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return int(dt.timestamp()) * 1_000_000_000 + dt.microsecond * 1000


def _parse(data: bytes, **kw: Any) -> tuple[list[dict[str, Any]], ParseReport]:
    report = ParseReport()
    rows: list[dict[str, Any]] = []
    for table in JsonLogFormat().parse(io.BytesIO(data), report, **kw):
        assert table.column_names == list(ROW_COLUMNS)
        rows.extend(table.to_pylist())
    return rows, report


# Expected event of each of the 28 real lines, in file order (ts, seq, msg_key, signer_ts checked below).
EXPECTED: list[dict[str, Any]] = [
    {
        "kind": "node_info",
        "validator": "27F16B56F09EC2EE3E92A081446123F139BC2926",
        "extra": '{"pub_key":"PubKeyEd25519{E75447F53596A7F0220AC24B76830450FA2F80489B1FF32931049CF872CDB61A}"}',
    },
    {"kind": "node_info", "extra": '{"p2p_id":"c9124bcc8a68b332bb01164bda1cee1b2e2892fc"}'},
    {
        "kind": "proposer_turn",
        "height": 1,
        "round": 0,
        "step": "propose",
        "validator": "14723CA6837129C61A873631CF7C865AEBBF63B1",
        "extra": '{"our_turn":false}',
    },
    {
        "kind": "proposer_turn",
        "height": 2,
        "round": 0,
        "step": "propose",
        "validator": "27F16B56F09EC2EE3E92A081446123F139BC2926",
        "extra": '{"our_turn":true}',
    },
    {
        "kind": "proposal_signed",
        "height": 2,
        "round": 0,
        "msg_type": "proposal",
        "block_hash": "B5B87A0CB4173DB4843C223FDD880E46117D7FD2D45B0FDCA54F5A71A3EAC56F",
        "extra": '{"pol_round":-1,"parts_total":1,"parts_hash_fp":"5CF256DF4F94"}',
    },
    {
        "kind": "step",
        "height": 5,
        "round": 0,
        "step": "new_round",
        "validator": "14723CA6837129C61A873631CF7C865AEBBF63B1",
        "extra": '{"previous":"5/0/RoundStepNewHeight"}',
    },
    {
        "kind": "step_invalid",
        "height": 2,
        "round": 0,
        "step": "new_round",
        "extra": '{"current":"2/0/RoundStepPrecommit"}',
    },
    {"kind": "step", "height": 4, "round": 0, "step": "prevote", "extra": '{"current":"4/0/RoundStepPropose"}'},
    {"kind": "step", "height": 4, "round": 0, "step": "precommit", "extra": '{"current":"4/0/RoundStepPrevote"}'},
    {
        "kind": "polka_lock",
        "height": 2,
        "round": 0,
        "step": "precommit",
        "block_hash": "B5B87A0CB4173DB4843C223FDD880E46117D7FD2D45B0FDCA54F5A71A3EAC56F",
    },
    {
        "kind": "step_invalid",
        "height": 2,
        "round": 0,
        "step": "precommit",
        "extra": '{"current":"2/0/RoundStepPrecommit"}',
    },
    {"kind": "step", "height": 4, "round": 0, "step": "precommit", "extra": '{"current":"4/0/RoundStepPrevote"}'},
    {
        "kind": "vote_adding",
        "height": 2,
        "vote_type": "prevote",
        "msg_type": "vote",
        "validator_index": 1,
        "extra": '{"cs_height":2}',
    },
    {
        "kind": "vote_added",
        "height": 4,
        "round": 0,
        "vote_type": "prevote",
        "msg_type": "vote",
        "validator_index": 0,
        "extra": '{"set":"prevote","validator_fp":"14723CA68371"}',
    },
    {
        "kind": "vote_added",
        "height": 4,
        "round": 0,
        "vote_type": "precommit",
        "msg_type": "vote",
        "validator": "47F2A97347636F3F163AA0A80EBC148AEB00CC64",
        "extra": '{"set":"precommit"}',
    },
    {
        "kind": "vote_added",
        "height": 4,
        "round": 0,
        "vote_type": "precommit",
        "msg_type": "vote",
        "extra": '{"set":"last_commit"}',
    },
    {
        "kind": "vote_gossip",
        "height": 4,
        "round": 0,
        "vote_type": "precommit",
        "msg_type": "vote",
        "validator_index": 3,
        "extra": '{"validator_fp":"47F2A9734763"}',
    },
    {
        "kind": "p2p_send",
        "height": 4,
        "round": 0,
        "vote_type": "precommit",
        "msg_type": "vote",
        "validator": "47F2A97347636F3F163AA0A80EBC148AEB00CC64",
        "validator_index": 3,
        "peer": "344fddf3df5ad8944fd962ce702bd76392a33eff",
        "block_hash": "C3C61C93E975E4F6321BA3ACFBBCA6CB9678959A5B7F932A8D9B21BD5E42AF8C",
        "size": 187,
    },
    {
        "kind": "msg_received",
        "height": 2,
        "round": 0,
        "vote_type": "prevote",
        "msg_type": "has_vote",
        "validator_index": 1,
        "peer": "a0b24cc231969d2951288f607cd6671c0e20e921",
    },
    {
        "kind": "msg_received",
        "height": 1,
        "round": 0,
        "vote_type": "prevote",
        "msg_type": "vote",
        "validator_index": 0,
        "peer": "1d8ff37135f1583255143662b1e1343677c59332",
        "extra": '{"validator_fp":"14723CA68371"}',
    },
    {
        "kind": "p2p_packet",
        "peer": "344fddf3df5ad8944fd962ce702bd76392a33eff",
        "size": 8,
        "extra": '{"channel":32,"eof":true}',
    },
    {
        "kind": "proposal_received",
        "height": 1,
        "round": 0,
        "msg_type": "proposal",
        "validator": "14723CA6837129C61A873631CF7C865AEBBF63B1",
        "block_hash": "59E56586157743A042A6975F0320AAEB887A547FF01AF344321ABF8C7B2DE76B",
        "extra": '{"pol_round":-1,"parts_total":1,"parts_hash_fp":"711D142694C9"}',
    },
    {
        "kind": "msg_received",
        "height": 1,
        "round": 0,
        "msg_type": "block_part",
        "part_index": 0,
        "peer": "1d8ff37135f1583255143662b1e1343677c59332",
        "extra": '{"total":1,"count":1}',
    },
    {
        "kind": "block_complete",
        "height": 2,
        "block_hash": "B5B87A0CB4173DB4843C223FDD880E46117D7FD2D45B0FDCA54F5A71A3EAC56F",
    },
    {
        "kind": "commit_finalizing",
        "height": 1,
        "block_hash": "59E56586157743A042A6975F0320AAEB887A547FF01AF344321ABF8C7B2DE76B",
        "extra": '{"num_txs":0}',
    },
    {
        "kind": "block_committed",
        "height": 1,
        "validator": "14723CA6837129C61A873631CF7C865AEBBF63B1",
        "block_hash": "59E56586157743A042A6975F0320AAEB887A547FF01AF344321ABF8C7B2DE76B",
    },
    {"kind": "valid_block_updated", "extra": '{"pol_round":0,"valid_round":-1}'},
    {"kind": "timeout_scheduled", "height": 2, "round": 0, "step": "propose", "extra": '{"duration_ns":3000000000}'},
]

# Signer timestamps carried inside the line (proposal/vote strings or protobuf), by line number (1-based).
SIGNER_TS = {
    5: "2025-06-08T01:24:21.316031Z",
    14: "2025-06-08T01:24:25.135287Z",
    15: "2025-06-08T01:24:25.245992Z",
    17: "2025-06-08T01:24:25.245992Z",
    18: "2025-06-08T01:24:25.245992Z",
    20: "2025-06-08T01:24:20.126787Z",
    22: "2025-06-07T14:41:31.325889Z",
}


def test_every_real_line_becomes_the_expected_event(json_debug_lines: Path) -> None:
    data = json_debug_lines.read_bytes()
    raw_lines = data.splitlines()
    rows, report = _parse(data)
    assert report.lines == 28 and report.events == 28 and not report.skipped
    assert len(rows) == len(EXPECTED) == len(raw_lines)
    offset = 0
    for i, (row, expected, raw) in enumerate(zip(rows, EXPECTED, raw_lines, strict=True), start=1):
        src = json.loads(raw)
        core = {k: v for k, v in row.items() if v is not None and k not in ("ts", "seq", "msg_key", "signer_ts")}
        assert core == expected, f"line {i}"
        assert row["ts"] == _ns(src["ts"]), f"line {i}"
        assert row["seq"] == offset, f"line {i}: seq is the byte offset of the line"
        offset += len(raw) + 1
        assert row["signer_ts"] == (_ns(SIGNER_TS[i]) if i in SIGNER_TS else None), f"line {i}"
        if src["_msg"] == "Send":
            assert row["msg_key"] == _signed(xxhash.xxh3_64_intdigest(bytes.fromhex(src["msgBytes"])))
        else:
            assert row["msg_key"] is None


def _signed(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


def test_identity_comes_from_the_lines(json_debug_lines: Path) -> None:
    ident = JsonLogFormat().identity(io.BytesIO(json_debug_lines.read_bytes()), 1 << 20)
    assert ident.p2p_id == "c9124bcc8a68b332bb01164bda1cee1b2e2892fc"
    assert ident.validator == "27F16B56F09EC2EE3E92A081446123F139BC2926"


def test_received_bytes_matches_the_send_of_the_same_message(json_debug_lines: Path) -> None:
    send = next(json.loads(x) for x in json_debug_lines.read_bytes().splitlines() if b'"Send"' in x)
    recv = {
        "_msg": "Received bytes",
        "chID": 34,
        "level": "debug",
        "module": "p2p",
        "msgBytes": base64.b64encode(bytes.fromhex(send["msgBytes"])).decode(),
        "peer": "c9124bcc8a68b332bb01164bda1cee1b2e2892fc@127.0.0.1:26656",
        "ts": "2025-06-08T01:24:25.503968Z",
    }
    rows, report = _parse((json.dumps(send) + "\n" + json.dumps(recv) + "\n").encode())
    assert not report.skipped
    assert [r["kind"] for r in rows] == ["p2p_send", "p2p_recv"]
    s, r = rows
    assert r["msg_key"] == s["msg_key"] and r["size"] == s["size"] == 187
    for col in ("height", "round", "vote_type", "validator", "validator_index", "block_hash", "signer_ts"):
        assert r[col] == s[col]
    assert r["peer"] == "c9124bcc8a68b332bb01164bda1cee1b2e2892fc"
    assert r["ts"] - s["ts"] == 100_000_000


def test_lower_case_messages_of_older_versions() -> None:
    line = (
        b'{"_msg":"entering new round","current":"7/0/RoundStepNewHeight","height":7,"level":"debug",'
        b'"module":"consensus","round":0,"ts":"2023-04-13T10:10:58.5Z"}\n'
    )
    rows, _ = _parse(line)
    assert rows[0]["kind"] == "step" and rows[0]["step"] == "new_round" and rows[0]["height"] == 7
    assert rows[0]["ts"] == _ns("2023-04-13T10:10:58.500000Z")


def test_wait_steps_are_not_mistaken_for_their_prefix() -> None:
    lines = b"".join(
        b'{"_msg":"Entering %s step","current":"3/1/RoundStepPrevote","height":3,"round":1,'
        b'"ts":"2025-01-01T00:00:0%dZ"}\n' % (name, i)
        for i, name in enumerate([b"prevote", b"prevote wait", b"precommit", b"precommit wait", b"commit"])
    )
    rows, _ = _parse(lines)
    assert [r["step"] for r in rows] == ["prevote", "prevote_wait", "precommit", "precommit_wait", "commit"]


def test_bad_lines_are_counted_and_the_rest_kept(json_debug_lines: Path) -> None:
    good = json_debug_lines.read_bytes().splitlines()
    data = (
        b"\n".join(
            [
                good[0],
                b"not json at all",
                b'{"_msg":"Something else entirely","ts":"2025-06-08T01:24:18Z"}',
                b'{"_msg":"Scheduled timeout","dur":"3s","height":2,"round":0,"step":"RoundStepPropose",'
        b'"ts":"yesterday"}',
                b"\x00\xff\xfe garbage \x80",
                b'{"_msg":"Send","channel":34,"msgBytes":"ZZZZ","peer":"ab@1.2.3.4:5","ts":"2025-06-08T01:24:18Z"}',
                b'{"_msg":"Send","channel":48,"msgBytes":"0A0B","peer":"ab@1.2.3.4:5","ts":"2025-06-08T01:24:18Z"}',
                b'{"_msg":"Scheduled timeout","dur":"3s","height":"two","round":0,"step":"RoundStepPropose",'
                b'"ts":"2025-06-08T01:24:18Z"}',
                b"[1, 2, 3]",
                b"",
                good[1],
            ]
        )
        + b"\n"
    )
    rows, report = _parse(data)
    assert [r["kind"] for r in rows] == ["node_info", "node_info"]
    assert report.skipped == {
        "not JSON": 3,
        "unrecognized message": 1,
        "malformed timestamp": 1,
        "undecodable msgBytes": 1,
        "non-consensus channel": 1,
        "malformed field": 1,
    }
    assert report.examples[0].startswith("offset ")


def test_a_huge_line_is_skipped_without_being_buffered(json_debug_lines: Path) -> None:
    good = json_debug_lines.read_bytes().splitlines()
    huge = b'{"_msg":"Committed block","block":"' + b"x" * 300_000 + b'","height":1,"ts":"2025-06-08T01:24:18Z"}'
    rows, report = _parse(b"\n".join([good[0], huge, good[1]]) + b"\n", max_line_bytes=65_536)
    assert len(rows) == 2 and report.skipped == {"line too long": 1}


def test_empty_input() -> None:
    rows, report = _parse(b"")
    assert rows == [] and report.lines == 0


def test_ranges_partition_the_lines(json_debug_lines: Path) -> None:
    data = json_debug_lines.read_bytes() * 5
    whole, _ = _parse(data)
    for cut in (1, 100, 248, 249, 4000, len(data) - 1):
        first, _ = _parse(data, end=cut)
        second, _ = _parse(data, start=cut)
        assert [r["seq"] for r in first + second] == [r["seq"] for r in whole], cut


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=3000))
def test_random_bytes_never_raise(blob: bytes) -> None:
    rows, report = _parse(blob)
    assert report.events == len(rows)


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_mutated_real_lines_never_raise(data: st.DataObject) -> None:
    raw = bytearray(require_data("cometbft/cometbft-1.x-json-debug-lines.jsonl").read_bytes())
    for _ in range(data.draw(st.integers(1, 20))):
        pos = data.draw(st.integers(0, len(raw) - 1))
        raw[pos] = data.draw(st.integers(0, 255))
    rows, report = _parse(bytes(raw))
    assert report.events == len(rows) <= 28
    assert all(r["kind"] for r in rows)
