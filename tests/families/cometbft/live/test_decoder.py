"""The RPC websocket decoder on recorded frames (v0.38 kvstore and v0.34 gaia NewBlock envelopes, the
ValidatorSetUpdates doc example, a refused subscription, a Tx event) and on frames built per §E of
live-sources.md: every row as the docs/live.md contract table says, everything else counted, never raised."""

from __future__ import annotations

import json
from typing import Any

from bftscope.families.cometbft.live.decoder import RpcDecoder, block_rows, commit_rows
from bftscope.sources.base import Frame
from tests.conftest import require_data

T0 = 1_700_000_000_000_000_000
RPC = "tendermint-rpc"


def _decoder() -> RpcDecoder:
    ticks = iter(range(T0, T0 + 10**9, 1000))
    return RpcDecoder(clock_ns=lambda: next(ticks))


def _recorded(relative: str) -> bytes:
    return require_data(f"{RPC}/{relative}").read_bytes()


def _event(kind: str, value: dict[str, Any], data_type: str | None = None, sub_id: int = 1) -> Frame:
    doc = {"jsonrpc": "2.0", "id": sub_id, "result": {"query": f"tm.event = '{kind}'",
           "data": {"type": data_type or f"tendermint/event/{kind}", "value": value},
           "events": {"tm.event": [kind]}}}  # fmt: skip
    return Frame(json.dumps(doc).encode())


def _vote(vtype: int, height: int, rnd: int, index: int, addr: str, block_hash: str) -> Frame:
    vote = {"type": vtype, "height": str(height), "round": rnd,
            "block_id": {"hash": block_hash, "parts": {"total": 1 if block_hash else 0, "hash": ""}},
            "timestamp": "2023-04-13T10:09:01.588443963Z", "validator_address": addr, "validator_index": index,
            "signature": "c2ln", "extension": None, "extension_signature": None}  # fmt: skip
    return _event("Vote", {"Vote": vote})


def test_new_block_v038_gives_the_block_and_its_last_commit() -> None:
    dec = _decoder()
    rows = dec.feed(Frame(_recorded("tendermint-rs_kvstore_v0_38/incoming/subscribe_newblock_0.json")))
    assert [r["kind"] for r in rows] == ["block_committed", "commit_sig"]
    block, sig = rows
    assert (
        block["height"] == 235
        and block["block_hash"] == "FA01C08688623731FA4250FB7873FE2049349DAE5352CB823E5BE0F472017C22"
    )
    assert block["validator"] == "2DD9F44FD9067555C322243C3C913BA7B51D2BE0"
    assert block["signer_ts"] == 1684332890081741308 and block["ts"] == T0
    assert json.loads(block["extra"]) == {"num_txs": 0, "source": "rpc"}
    assert (sig["height"], sig["round"], sig["vote_type"], sig["validator_index"]) == (234, 0, "precommit", 0)
    assert sig["validator"] == "2DD9F44FD9067555C322243C3C913BA7B51D2BE0"
    assert sig["block_hash"] == "657D0859C6F0E0D556D150A14D9D76EF0ED0FBF83932980562B98B535916DF2C"
    assert json.loads(sig["extra"]) == {"flag": 2, "source": "block"}
    assert dec.report.events == 2 and dec.report.skipped == {} and dec.last_block_height == 235


def test_new_block_v034_envelopes_have_no_block_id() -> None:
    """v0.34 NewBlock carries result_begin/end_block and no block_id: the hash is unknown (NULL), not guessed."""
    dec = _decoder()
    gaia = dec.feed(Frame(_recorded("tendermint-rs_gaia/incoming/subscribe_newblock_0.json")))
    legacy = dec.feed(Frame(_recorded("tendermint-rs_legacy_support/event_new_block_1.json")))
    assert [(r["kind"], r["height"]) for r in gaia] == [("block_committed", 167), ("commit_sig", 166)]
    assert gaia[0]["block_hash"] is None and gaia[0]["validator"] == "BB22AD764B674CC08753B24175E2FC61B22B1419"
    assert [(r["kind"], r["height"]) for r in legacy] == [("block_committed", 1608), ("commit_sig", 1607)]
    assert legacy[1]["block_hash"] == "D3B2CC7EDAFF87433A5DBCDCDF4077A56AACDE3606034262B0CDB120F62EB40B"
    assert dec.report.skipped == {}


def test_validator_set_updates_take_effect_two_heights_after_the_last_block() -> None:
    frame = Frame(_recorded("cometbft_v0.38_docs/event_ValidatorSetUpdates.json"))
    dec = _decoder()
    (before,) = dec.feed(frame)
    assert before["kind"] == "validator_update" and before["height"] is None
    assert before["validator"] == "09EAD022FD25DE3A02E64B0FE9610B1417183EE4"
    assert json.loads(before["extra"]) == {"power": 10, "proposer_priority": 0}
    dec.feed(Frame(_recorded("tendermint-rs_kvstore_v0_38/incoming/subscribe_newblock_0.json")))
    (after,) = dec.feed(frame)
    assert after["height"] == 237


def test_acks_errors_unknown_events_and_garbage_are_counted_not_raised() -> None:
    dec = _decoder()
    frames = [
        Frame(b'{"jsonrpc":"2.0","id":1,"result":{}}'),  # a subscribe ack
        Frame(_recorded("tendermint-rs_kvstore_v0_38/incoming/subscribe_malformed.json")),
        Frame(_recorded("tendermint-rs_kvstore_v0_38/incoming/subscribe_txs_0.json")),
        Frame(b"{not json"),
        Frame(b"[1, 2]"),
        Frame(_recorded("tendermint-rs_kvstore_v0_38/incoming/subscribe_newblock.json")),  # a bare {}
        _event("Vote", {"Vote": {"type": 1, "round": 0}}),  # no height
        _event("NewRound", {"height": "x", "round": 0}),
        _vote(32, 5, 0, 1, "AB", ""),  # a proposal type is never a vote
    ]
    for f in frames:
        assert dec.feed(f) == []
    assert dec.report.skipped == {
        "subscribe ack": 1,
        "rpc error -32603": 1,
        "unknown event tendermint/event/Tx": 1,
        "not JSON": 1,
        "not a JSON-RPC message": 2,
        "malformed Vote": 2,
        "malformed NewRound": 1,
    }
    assert dec.report.lines == len(frames) and dec.report.events == 0
    assert "failed to parse query" in dec.errors[0]


def test_consensus_events_built_per_the_reference_shapes() -> None:
    dec = _decoder()
    prop = "5917B48A13EFF68A47E9C309518DEB3E648749EE"
    block = "72A4401FE2F0E29DA193A5B83302C90C4A85E20B1720BD30839077A2831A2519"
    frames = [
        _event(
            "NewRound",
            {"height": "12", "round": 1, "step": "RoundStepNewRound", "proposer": {"address": prop, "index": 2}},
        ),
        _event(
            "NewRoundStep", {"height": "12", "round": 1, "step": "RoundStepNewRound"}, "tendermint/event/RoundState"
        ),  # dropped: NewRound said it, with the proposer
        _event(
            "NewRoundStep", {"height": "12", "round": 1, "step": "RoundStepPrevoteWait"}, "tendermint/event/RoundState"
        ),
        _event(
            "CompleteProposal",
            {
                "height": "12",
                "round": 1,
                "step": "RoundStepPropose",
                "block_id": {"hash": block, "parts": {"total": 1, "hash": "AA"}},
            },
        ),
        _vote(1, 12, 1, 0, "032df8efa3f8f921bfcad4e72ac251a5760f3e4c", block),
        _vote(2, 12, 1, 3, "0A" * 20, ""),
    ]
    rows = [r for f in frames for r in dec.feed(f)]
    assert [(r["kind"], r.get("step")) for r in rows] == [
        ("step", "new_round"), ("step", "prevote_wait"), ("block_complete", None), ("vote_added", None),
        ("vote_added", None)]  # fmt: skip
    assert (rows[0]["validator"], rows[0]["validator_index"], rows[0]["height"], rows[0]["round"]) == (prop, 2, 12, 1)
    assert rows[2]["block_hash"] == block and rows[2]["round"] == 1
    prevote, nil_precommit = rows[3], rows[4]
    assert prevote["vote_type"] == "prevote" and prevote["msg_type"] == "vote" and prevote["block_hash"] == block
    assert prevote["validator"] == "032DF8EFA3F8F921BFCAD4E72AC251A5760F3E4C" and prevote["validator_index"] == 0
    assert prevote["signer_ts"] == 1681380541588443963 and json.loads(prevote["extra"]) == {"source": "rpc"}
    assert nil_precommit["vote_type"] == "precommit" and nil_precommit["block_hash"] is None
    assert dec.report.skipped == {"step new_round (carried by NewRound)": 1} and dec.report.events == 5


def test_commit_rows_from_a_recorded_commit_and_block() -> None:
    commit = json.loads(_recorded("tendermint-rs_kvstore_v0_38/incoming/commit_at_height_10.json"))
    (sig,) = commit_rows(commit["result"]["signed_header"]["commit"], T0, "commit")
    assert (sig["kind"], sig["height"], sig["round"], sig["validator_index"]) == ("commit_sig", 10, 0, 0)
    assert json.loads(sig["extra"]) == {"flag": 2, "source": "commit"} and sig["signer_ts"] == 1684332773605374524
    block = json.loads(_recorded("tendermint-rs_kvstore_v0_38/incoming/block_at_height_10.json"))
    rows = block_rows(block["result"], T0, "block")
    assert [(r["kind"], r["height"]) for r in rows] == [("block_committed", 10), ("commit_sig", 9)]


def test_absent_and_nil_signatures() -> None:
    """flag 1 (absent): no address, the zero time → validator and signer_ts NULL; flag 3 (nil): no block hash."""
    commit = {"height": "7", "round": 2, "block_id": {"hash": "BB" * 32},
              "signatures": [{"block_id_flag": 1, "validator_address": "", "timestamp": "0001-01-01T00:00:00Z",
                              "signature": None},
                             {"block_id_flag": 3, "validator_address": "CC" * 20,
                              "timestamp": "2023-04-13T10:09:01Z", "signature": "c2ln"},
                             {"block_id_flag": 9}, "junk"]}  # fmt: skip
    report_rows = commit_rows(commit, T0, "commit")
    assert [(r["validator"], r["validator_index"], r["block_hash"], r["signer_ts"]) for r in report_rows] == [
        (None, 0, None, None),
        ("CC" * 20, 1, None, 1681380541000000000),
    ]
    assert [json.loads(r["extra"])["flag"] for r in report_rows] == [1, 3]


def test_every_recorded_fixture_decodes_or_is_counted() -> None:
    """Every recorded event frame of the fixtures decodes or is named in the report (none raises)."""
    root = require_data(RPC)
    dec = _decoder()
    for path in sorted(root.rglob("*.json")):
        dec.feed(Frame(path.read_bytes()))
    assert dec.report.lines == len(list(root.rglob("*.json"))) and dec.report.events >= 8
