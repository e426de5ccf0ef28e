"""The Casper SSE decoder on every real payload (docs fixtures, the sidecar's legacy fixtures, the sidecar's stored
REST bodies, the SSE transcripts), compared field by field with values read from the JSON by the standard
library; malformed frames counted by reason and never raised; random bytes never raise."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bftscope.families.casper.decoder import CasperDecoder, parse_timestamp_ms
from bftscope.sources.base import Frame
from bftscope.sources.sse import SSEParser
from tests.conftest import require_data

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_UNITS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "day": 86_400_000}


def _ms(text: str) -> int:
    t = datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    return (t - _EPOCH).days * 86_400_000 + (t - _EPOCH).seconds * 1000 + (t - _EPOCH).microseconds // 1000


def _ttl(text: str) -> int:
    return sum(int(n) * _UNITS[u] for n, u in re.findall(r"(\d+)([a-z]+)", text))


def _weights(end: Any) -> list[tuple[str, str]] | None:
    if end is None:
        return None
    w = end["next_era_validator_weights"]
    return [(k, str(v)) for k, v in w.items()] if isinstance(w, dict) else [(x["validator"], x["weight"]) for x in w]


def expected(doc: Any) -> tuple[str, str, dict[str, Any]]:
    """(type, key, fields) of a node event read with the standard library: the contract's table, line by line."""
    if doc == "Shutdown":
        return "Shutdown", "None", {}
    (kind, b), = doc.items()
    if kind == "BlockAdded":
        h, body = b["block"]["header"], b["block"]["body"]
        return kind, b["block_hash"], {
            "block_hash": b["block_hash"], "height": h["height"], "era_id": h["era_id"],
            "timestamp_ms": _ms(h["timestamp"]), "proposer": body["proposer"], "parent_hash": h["parent_hash"],
            "state_root_hash": h["state_root_hash"], "deploy_hashes": body["deploy_hashes"],
            "transfer_hashes": body["transfer_hashes"], "era_end": h["era_end"] is not None,
            "next_era_weights": _weights(h["era_end"]), "protocol_version": h["protocol_version"]}  # fmt: skip
    if kind == "DeployAccepted":
        hd = b["header"]
        return kind, b["hash"], {"deploy_hash": b["hash"], "account": hd["account"],
                                 "timestamp_ms": _ms(hd["timestamp"]), "ttl_ms": _ttl(hd["ttl"]),
                                 "chain_name": hd["chain_name"]}  # fmt: skip
    if kind == "DeployProcessed":
        (outcome, r), = b["execution_result"].items()
        return kind, b["deploy_hash"], {
            "deploy_hash": b["deploy_hash"], "account": b["account"], "block_hash": b["block_hash"],
            "timestamp_ms": _ms(b["timestamp"]), "success": outcome == "Success", "cost": r["cost"],
            "error_message": r.get("error_message")}  # fmt: skip
    if kind == "DeployExpired":
        return kind, b["deploy_hash"], {"deploy_hash": b["deploy_hash"]}
    if kind == "Fault":
        return kind, f"{b['era_id']} {b['public_key']}", {"era_id": b["era_id"], "public_key": b["public_key"],
                                                          "timestamp_ms": _ms(b["timestamp"])}  # fmt: skip
    if kind == "FinalitySignature":
        return kind, f"{b['block_hash']} {b['public_key']}", {k: b[k] for k in ("block_hash", "era_id", "public_key",
                                                                                 "signature")}  # fmt: skip
    if kind == "Step":
        return kind, str(b["era_id"]), {"era_id": b["era_id"]}
    assert kind == "ApiVersion"
    return kind, b, {"version": b}


def _payloads() -> list[tuple[str, bytes]]:
    """(name, raw JSON) of every real event payload: the node-event docs, the sidecar's legacy fixtures, and the
    node payloads inside the sidecar's REST answers (wrapped in their type, as the node sent them)."""
    folder = require_data("casper-sse")
    out = [(p.name, p.read_bytes()) for p in sorted(folder.glob("casper-docs_node-events_*.json"))]
    out += [(p.name, p.read_bytes()) for p in sorted((folder / "sidecar_legacy_fixtures").glob("*.json"))]
    for name in ("01_latest_block", "02_block_by_hash", "03_block_by_height"):
        body = (folder / f"sidecar_USAGE_rest_{name}.json").read_text()
        out.append((name, ('{"BlockAdded":' + body + "}").encode()))
    out.append(("06", ('{"DeployAccepted":' + (folder / "sidecar_USAGE_rest_06_deploy_accepted.json").read_text()
                       + "}").encode()))  # fmt: skip
    out.append(("07", ('{"DeployProcessed":' + (folder / "sidecar_USAGE_rest_07_deploy_processed.json").read_text()
                       + "}").encode()))  # fmt: skip
    for p in ("04_deploy_aggregate_accepted_only", "05_deploy_aggregate_processed"):
        agg = json.loads((folder / f"sidecar_USAGE_rest_{p}.json").read_text())
        out.append((p, json.dumps({"DeployAccepted": agg["deploy_accepted"]}).encode()))
        if agg["deploy_processed"]:
            out.append((p, json.dumps({"DeployProcessed": agg["deploy_processed"]}).encode()))
    return out


def test_there_are_real_payloads_of_every_type() -> None:
    kinds = set()
    for _, raw in _payloads():
        try:
            doc = json.loads(raw)
        except ValueError:
            continue
        kinds.add("Shutdown" if doc == "Shutdown" else next(iter(doc)))
    assert kinds >= {"ApiVersion", "BlockAdded", "DeployAccepted", "DeployProcessed", "DeployExpired", "Fault",
                     "FinalitySignature", "Step", "Shutdown"}  # fmt: skip


def test_every_real_payload_decodes_to_its_type_key_and_fields() -> None:
    payloads = _payloads()
    assert len(payloads) >= 20
    for name, raw in payloads:
        d = CasperDecoder("node:9999", "main", clock=lambda: 7)
        events = d.feed(Frame(raw, id="12"))
        try:
            doc = json.loads(raw)
        except ValueError:  # the docs' DeployProcessed has a trailing comma: not JSON for anyone
            assert events == () and d.report.skipped == {"not JSON": 1}, name
            continue
        kind, key, fields = expected(doc)
        assert len(events) == 1, (name, d.report.skipped)
        (e,) = events
        if kind == "ApiVersion":
            assert (e.type, e.key, e.fields) == (kind, key, fields)
            continue
        if kind == "Shutdown":
            key = "12"
        assert (e.type, e.key, e.event_id, e.raw, e.source, e.channel) == (kind, key, 12, raw, "node:9999", "main")
        assert e.fields == fields, name


def test_the_docs_deploy_processed_decodes_once_its_trailing_comma_is_gone() -> None:
    raw = (require_data("casper-sse") / "casper-docs_node-events_DeployProcessed.json").read_bytes()
    fixed = re.sub(rb",(\s*[\]}])", rb"\1", raw)
    (e,) = CasperDecoder("n", "main").feed(Frame(fixed, id="1"))
    assert (e.type, e.key, e.fields) == expected(json.loads(fixed))


def _transcript_frames() -> list[tuple[str, Frame]]:
    out = []
    for path in sorted(require_data("casper-sse").glob("*.sse")):
        parser = SSEParser()
        # the copies end without the blank line that ends their last event (a live stream goes on): add it
        out += [(path.name, f) for f in parser.feed(path.read_bytes() + b"\n\n")]
    return out


def test_the_sse_transcripts_decode_as_their_json_says() -> None:
    frames = _transcript_frames()
    d = CasperDecoder("n", "events")
    decoded = sidecar = 0
    for name, frame in frames:
        doc = json.loads(frame.data)
        events = d.feed(frame)
        if isinstance(doc, dict) and next(iter(doc)) == "SidecarVersion":  # the sidecar's own stream, not a node's
            assert events == ()
            sidecar += 1
            continue
        kind, key, fields = expected(doc)
        (e,) = events
        assert (e.type, e.fields) == (kind, fields), name
        assert e.key == (frame.id if kind == "Shutdown" else key)
        assert e.event_id == (int(frame.id) if frame.id and kind != "ApiVersion" else e.event_id)
        decoded += 1
    assert decoded == len(frames) - sidecar >= 4 and d.report.skipped == {"unknown event type": sidecar}


_BLOCK = json.loads(json.dumps({"BlockAdded": {"block_hash": "ab", "block": {
    "hash": "ab", "header": {"parent_hash": "00", "state_root_hash": "11", "era_end": None,
                             "timestamp": "2024-01-01T00:00:00.000Z", "era_id": 3, "height": 10,
                             "protocol_version": "1.5.6"},
    "body": {"proposer": "01aa", "deploy_hashes": [], "transfer_hashes": []}, "proofs": []}}}))  # fmt: skip


def _block(**header: Any) -> bytes:
    doc = json.loads(json.dumps(_BLOCK))
    doc["BlockAdded"]["block"]["header"].update(header)
    return json.dumps(doc).encode()


@pytest.mark.parametrize(("data", "frame_id", "reason"), [
    (b"not json at all", "1", "not JSON"),
    (b'{"BlockAdded": {"block_hash": ', "1", "not JSON"),
    (b'{"Gossip": {"x": 1}}', "1", "unknown event type"),
    (b'"Startup"', "1", "unknown event type"),
    (b'{"FinalitySignature": {"block_hash": "ab", "era_id": 1, "public_key": "01"}}', "1", "bad FinalitySignature"),
    (b'{"DeployExpired": {}}', "1", "bad DeployExpired"),
    (b'{"Fault": {"era_id": "x", "public_key": "01", "timestamp": "2024-01-01T00:00:00.000Z"}}', "1", "bad Fault"),
    (b'{"DeployExpired": {"deploy_hash": "ab"}}', "4294967296", "bad id"),
    (b'{"DeployExpired": {"deploy_hash": "ab"}}', "-1", "bad id"),
    (_block(height=2**63), "1", "bad BlockAdded"),
    (_block(era_id=2**63), "1", "bad BlockAdded"),
    (_block(timestamp="yesterday"), "1", "bad BlockAdded"),
    (b'{"ApiVersion": 2}', None, "bad ApiVersion"),
    (b'{"Step": {"era_id": 9223372036854775808}}', "1", "bad Step"),
])  # fmt: skip
def test_malformed_frames_are_counted_by_reason_and_never_raise(data: bytes, frame_id: str | None, reason: str) -> None:
    d = CasperDecoder("n", "main")
    assert d.feed(Frame(data, id=frame_id)) == ()
    assert d.report.skipped == {reason: 1}
    good = d.feed(Frame(b'{"DeployExpired": {"deploy_hash": "cd"}}', id="2"))  # the stream goes on
    assert [e.key for e in good] == ["cd"]


def test_the_largest_id_and_height_are_kept() -> None:
    (e,) = CasperDecoder("n", "main").feed(Frame(_block(height=2**63 - 1), id=str(2**32 - 1)))
    assert (e.event_id, e.fields["height"]) == (2**32 - 1, 2**63 - 1)


def test_timestamps_are_exact_milliseconds_in_utc() -> None:
    # a float product truncated gave 2184293439390 for .391 (1 in 200 timestamps was 1 ms early)
    assert parse_timestamp_ms("2039-03-21T04:10:39.391Z") == 2184293439391
    assert parse_timestamp_ms("2023-01-01T09:55:25.312Z") == _ms("2023-01-01T09:55:25.312Z")
    assert parse_timestamp_ms("2023-01-01T09:55:25.312") == _ms("2023-01-01T09:55:25.312Z")  # no offset: UTC
    assert parse_timestamp_ms("2023-01-01T10:55:25.312+01:00") == _ms("2023-01-01T09:55:25.312Z")


def _reference_ms(text: str) -> int:
    """What parse_timestamp_ms answers, by the standard library alone (ValueError when it is not a time)."""
    t = datetime.fromisoformat(text)
    return ((t if t.tzinfo else t.replace(tzinfo=UTC)) - _EPOCH) // timedelta(milliseconds=1)


@settings(max_examples=500, deadline=None)
@given(st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59)),
       st.sampled_from(["ms", "none", "us"]))  # fmt: skip
def test_a_nodes_timestamps_read_directly_equal_the_standard_librarys(t: datetime, fraction: str) -> None:
    text = t.strftime("%Y-%m-%dT%H:%M:%S") if t.year >= 1000 else f"{t.year:04d}" + t.strftime("-%m-%dT%H:%M:%S")
    text += {"ms": f".{t.microsecond // 1000:03d}", "none": "", "us": f".{t.microsecond:06d}"}[fraction] + "Z"
    assert parse_timestamp_ms(text) == _reference_ms(text)


@pytest.mark.parametrize("text", ["2023-02-29T00:00:00.000Z", "2023-13-01T00:00:00.000Z", "2023-01-01T24:00:00Z",
                                  "2023-01-01T23:60:00Z", "2023-01-01T23:59:60.000Z", "2023-00-10T00:00:00Z",
                                  "2023-04-31T00:00:00.000Z", "2023-01-01T00:00:00.000z",
                                  "2023-01-01 00:00:00Z"])  # fmt: skip
def test_a_time_that_is_not_one_is_refused_as_the_standard_library_refuses_it(text: str) -> None:
    try:
        want: int | type[ValueError] = _reference_ms(text)
    except ValueError:
        want = ValueError
    if want is ValueError:
        with pytest.raises(ValueError):
            parse_timestamp_ms(text)
    else:
        assert parse_timestamp_ms(text) == want


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.one_of(st.none(), st.text(max_size=12)))
def test_random_bytes_never_raise(data: bytes, frame_id: str | None) -> None:
    d = CasperDecoder("n", "main")
    events = d.feed(Frame(data, id=frame_id))
    assert len(events) + sum(d.report.skipped.values()) == 1


_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
                     lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=8), kids, max_size=3),
                     max_leaves=12)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["BlockAdded", "DeployAccepted", "DeployProcessed", "DeployExpired", "Fault",
                        "FinalitySignature", "Step", "ApiVersion"]), _JSON)  # fmt: skip
def test_any_json_under_a_known_type_never_raises(kind: str, body: Any) -> None:
    d = CasperDecoder("n", "main")
    events = d.feed(Frame(json.dumps({kind: body}).encode(), id="1"))
    assert len(events) + sum(d.report.skipped.values()) == 1


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(["height", "era_id", "timestamp", "era_end", "parent_hash"]), _JSON)
def test_any_value_in_a_real_block_header_never_raises(field: str, value: Any) -> None:
    raw = (Path(require_data("casper-sse")) / "sidecar_legacy_fixtures/raw_legacy_block_added.json").read_text()
    doc = json.loads(raw)
    doc["BlockAdded"]["block"]["header"][field] = value
    d = CasperDecoder("n", "main")
    events = d.feed(Frame(json.dumps(doc).encode(), id="1"))
    assert len(events) + sum(d.report.skipped.values()) == 1


def test_api_version_has_no_event_id_even_after_a_resume() -> None:
    # an SSE parser keeps the last id for frames without one: after ?start_from=7 the handshake carries "7"
    (e,) = CasperDecoder("n", "main").feed(Frame(b'{"ApiVersion":"1.5.6"}', id="7"))
    assert (e.type, e.event_id) == ("ApiVersion", None)
