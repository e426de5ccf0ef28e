"""The JSON parser's shortcut for repeated lines gives exactly what each line's own handler gives.

The parser recognises a Send / Received bytes / Receive / Read PacketMsg line that repeats an earlier
line of the same batch and then only adds its own columns (families/cometbft/parse/jsonlog.py, model.SharedRowBatch).
The reference below runs every line through its handler and converts all rows at once; both must
give the same events and the same skip counts, also for the corner cases the decode caches have
(the same bytes on another channel, text that is both hex and base64, lookalike packet keys, values
that do not fit their column) and across batch boundaries.
"""

from __future__ import annotations

import io
import json
from collections import Counter
from pathlib import Path
from typing import Any
from unittest import mock

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bftscope.families.cometbft.parse import logmsgs
from bftscope.families.cometbft.parse.jsonlog import JsonLogFormat
from bftscope.families.cometbft.parse.logmsgs import LogLine, MessageMapper, Skip
from bftscope.families.cometbft.synthetic.network import SimConfig, simulate
from bftscope.ingest.parsereport import ParseReport
from bftscope.model import EventBatch


def _reference(data: bytes) -> tuple[list[dict[str, Any]], Counter[str]]:
    """Every line through its handler, one after the other; all rows converted at the end."""
    mapper = MessageMapper(received_b64=True)
    rows = []
    skipped: Counter[str] = Counter()
    off = 0
    for raw in data.split(b"\n"):
        seq = off
        off += len(raw) + 1
        if not raw.strip():
            continue
        try:
            obj = msgspec.json.decode(raw, type=LogLine)
        except (msgspec.DecodeError, ValueError):
            skipped["not JSON"] += 1
            continue
        if type(obj.msg) is not str:
            skipped["no _msg"] += 1
            continue
        handler = mapper.handler(obj.msg)
        if handler is None:
            skipped["unrecognized message"] += 1
            continue
        if type(obj.ts) is not str:
            skipped["malformed timestamp"] += 1
            continue
        try:
            rows.append(handler(obj, obj.ts, seq))
        except Skip as exc:
            skipped[exc.reason] += 1
    batch = EventBatch(rows)
    table = batch.to_arrow()
    skipped.update(batch.dropped_reasons)
    return table.to_pylist(), skipped


class _ShortReads(io.BytesIO):
    """A stream that returns at most ``n`` bytes per read, so the parser flushes many small batches."""

    def __init__(self, data: bytes, n: int) -> None:
        super().__init__(data)
        self.n = n

    def read(self, size: int | None = -1) -> bytes:
        return super().read(self.n if size is None or size < 0 else min(size, self.n))


def _parse(data: bytes, read_bytes: int, batch_rows: int) -> tuple[list[dict[str, Any]], Counter[str]]:
    report = ParseReport()
    rows: list[dict[str, Any]] = []
    for table in JsonLogFormat().parse(_ShortReads(data, read_bytes), report, batch_rows=batch_rows):
        rows.extend(table.to_pylist())
    assert report.events == len(rows)
    return rows, report.skipped


@pytest.fixture(scope="module")
def sim_lines(tmp_path_factory: pytest.TempPathFactory) -> list[bytes]:
    out = tmp_path_factory.mktemp("sim") / "run"
    simulate(SimConfig(nodes=4, heights=5, seed=5), out)
    return (out / "node1.log").read_bytes().splitlines()


def test_a_simulated_log_parses_as_line_by_line(sim_lines: list[bytes]) -> None:
    data = b"\n".join(sim_lines) + b"\n"
    expected = _reference(data)
    assert len(expected[0]) > 1000, len(expected[0])
    for read_bytes, batch_rows in ((1 << 22, 65_536), (5_000, 100), (700, 1)):
        assert _parse(data, read_bytes, batch_rows) == expected


def _line(message: str, **fields: Any) -> bytes:
    return json.dumps({"_msg": message, "ts": "2025-06-08T01:24:19.019856Z", **fields}, sort_keys=True).encode()


_VOTE_B64 = "Cg8IARgBKP///////////wE="  # a NewRoundStep: valid base64 and decodes on channel 0x20
_PEER = "5c0159abde0f75689db3e8506f99f18ff7e6db65@127.0.0.1:26726"
_SRC = "Peer{MConn{127.0.0.1:26726} 5c0159abde0f75689db3e8506f99f18ff7e6db65 out}"

# Lines meant to hit the corners of the shortcut; they repeat each other in every combination.
CORNER_LINES = [
    _line("Received bytes", chID=32, msgBytes=_VOTE_B64, peer=_PEER),
    _line("Received bytes", chID=48, msgBytes=_VOTE_B64, peer=_PEER),  # same bytes, non-consensus channel
    _line("Received bytes", chID=33, msgBytes=_VOTE_B64, peer="OTHER@x"),  # type does not match channel
    _line("Received bytes", chID=32, msgBytes=_VOTE_B64),  # no peer
    _line("Received bytes", chID=32, msgBytes=_VOTE_B64, peer=7),
    _line("Received bytes", chID=32, msgBytes=7, peer=_PEER),
    _line("Received bytes", chID="32", msgBytes=_VOTE_B64, peer=_PEER),
    _line("Received bytes", chID=32, msgBytes=_VOTE_B64, peer=_PEER, ts=5),
    _line("Received bytes", chID=32, msgBytes=_VOTE_B64, peer=_PEER, ts="yesterday"),
    _line("Received bytes", chID=32, msgBytes="0a0b", peer=_PEER),  # hex and base64 alike
    _line("Send", channel=32, msgBytes="0a0b", peer=_PEER),
    _line("TrySend", channel=32, msgBytes="0A0F08011801", peer=_PEER),
    _line("Send", channel=32, msgBytes="0A0F0801180128FFFFFFFFFFFFFFFFFF01", peer=_PEER),  # round beyond int32
    _line("Send", channel=34, msgBytes="0A0F08011801", peer=_PEER),
    _line("Send", msgBytes="0A0F08011801", peer=_PEER),
    _line("send", channel=32, msgBytes="0A0F08011801", peer=_PEER),
    _line("Receive", chId=32, msg="[NewRoundStep H:1 R:0 S:RoundStepNewHeight LCR:-1]", src=_SRC),
    _line("Receive", chId=32, msg="[NewRoundStep H:1 R:0 S:RoundStepNewHeight LCR:-1]", src="nobody"),
    _line("Receive", chId=32, msg="[NewRoundStep H:1 R:0 S:RoundStepNewHeight LCR:-1]"),
    _line("Receive", chId=32, msg="[NewRoundStep H:1 R:99999999999 S:RoundStepPropose LCR:0]", src=_SRC),
    _line("Receive", chId=32, msg="[Nonsense]", src=_SRC),
    _line("Receive", chId=32, msg=["not", "text"], src=_SRC),
    _line("Read PacketMsg", packet={"channel_id": 32, "eof": True, "data": "Cg8IARgB"}, peer=_PEER),
    _line("Read PacketMsg", packet={"channel_id": True, "eof": 1, "data": "Cg8IARg="}, peer=_PEER),
    _line("Read PacketMsg", packet={"channel_id": 1, "eof": True, "data": "Cg8IARg="}, peer=_PEER),
    _line("Read PacketMsg", packet={"channel_id": 32, "eof": False, "data": 5}, peer=_PEER),
    _line("Read PacketMsg", packet={"channel_id": 32}, peer=_PEER),
    _line("Read PacketMsg", packet=None, peer=_PEER),
    _line("Read PacketMsg", peer=_PEER),
    _line("Something else", peer=_PEER),
    _line("Adding vote", vote_height=1, vote_type="SIGNED_MSG_TYPE_PREVOTE", val_index=2, cs_height=1),
    b'{"_msg":"Send","channel":32,"msgBytes":"0A0F08011801","ts":"2025-06-08T01:24:19Z","peer":"\xff"}',
    # Lines that look hot but are not HotLines (another key; a key HotLine decodes but LogLine skips).
    _line("Send", channel=32, msgBytes="0A0F08011801", peer=_PEER, height=5),
    b'{"_msg":"Send","channel":32,"level":"\xff","msgBytes":"0A0F08011801","peer":"p","ts":"2025-06-08T01:24:19Z"}',
    b'{"_msg":"Send","channel":32,"level":1e999,"msgBytes":"0A0F08011801","peer":"p","ts":"2025-06-08T01:24:19Z"}',
    b'{"_msg":"Receive","_msg":"Adding vote","level":"debug","ts":"2025-06-08T01:24:19Z"}',
    b'{"_msg":"Receive","_msg":"Unknown","level":"debug","ts":"2025-06-08T01:24:19Z"}',
    b'{"_msg":"Receive",',
    b'"ts":"2025-06-08T01:24:19Z","msg":"[NewRoundStep H:1 R:0 S:RoundStepNewHeight LCR:-1]","src":"x"}',
    b"not json",
    b"",
]


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_corner_cases_parse_as_line_by_line(sim_lines: list[bytes], data: st.DataObject) -> None:
    pool = CORNER_LINES + [x for x in sim_lines[:400] if b'"Receive' in x or b"Send" in x or b"Packet" in x]
    picks = data.draw(st.lists(st.sampled_from(pool), min_size=1, max_size=120))
    blob = b"\n".join(picks) + data.draw(st.sampled_from([b"", b"\n"]))
    read_bytes = data.draw(st.sampled_from([64, 300, 5_000, 1 << 22]))
    batch_rows = data.draw(st.sampled_from([1, 3, 65_536]))
    # A tiny decode-cache limit empties the caches (and with them the shortcut's keys) mid-batch.
    with mock.patch.object(logmsgs, "_CACHE_LIMIT", data.draw(st.sampled_from([2, 200_000]))):
        assert _parse(blob, read_bytes, batch_rows) == _reference(blob)


def test_the_corner_lines_do_reach_the_corners() -> None:
    """Guard against a pool that silently stopped testing anything: the reference skips or drops many."""
    rows: list[dict[str, Any]] = []
    skipped: Counter[str] = Counter()
    for line in CORNER_LINES:  # one by one: in one log, the decode caches answer for some of them
        r, s = _reference(line)
        rows += r
        skipped += s
    assert {"non-consensus channel", "message type does not match channel", "malformed timestamp",
            "value out of range", "unparsable consensus message", "unrecognized message",
            "not JSON"} <= set(skipped)  # fmt: skip
    assert any(r["kind"] == "p2p_packet" for r in rows)


def test_unhashable_packet_values_fail_the_range_as_before() -> None:
    """A ``channel_id`` that is a JSON object cannot key the memos: the handler raised TypeError before."""
    blob = _line("Read PacketMsg", packet={"channel_id": {}, "eof": True, "data": "AA=="}, peer=_PEER)
    with pytest.raises(TypeError):
        _parse(blob, 1 << 22, 65_536)
    with pytest.raises(TypeError):
        MessageMapper(received_b64=True).handler("Read PacketMsg")(  # type: ignore[misc]
            msgspec.json.decode(blob, type=LogLine), "2025-06-08T01:24:19Z", 0
        )


def test_short_reads_helper_is_a_real_stream(tmp_path: Path) -> None:
    s = _ShortReads(b"abcdef", 4)
    assert s.read() == b"abcd" and s.read(10) == b"ef" and s.read() == b""
