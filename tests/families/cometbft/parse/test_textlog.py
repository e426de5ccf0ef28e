"""Plain-text Tendermint logs: every real line parses (time, module, height); events match the lines."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime
from pathlib import Path

from bftscope.families.cometbft.parse.textlog import TextLogFormat, parse_text_line
from bftscope.ingest.parsereport import ParseReport

# An independent reading of the format, line by line, with a different technique (split, not regex).
_HEIGHT = re.compile(r"\bheight=(\d+)\b")


def _independent(line: str) -> tuple[str, int, str | None, int | None]:
    level = line[0]
    stamp = line[2 : line.index("]")]
    day, clock = stamp.split("|")
    dt = datetime.strptime(f"{day} {clock}", "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=UTC)
    ns = int(dt.timestamp()) * 1_000_000_000 + dt.microsecond * 1000
    module = next((tok[len("module=") :] for tok in line.split() if tok.startswith("module=")), None)
    h = _HEIGHT.search(line)
    return level, ns, module, int(h.group(1)) if h else None


def test_every_line_of_the_real_logs_parses(wal_testnet: Path) -> None:
    total = 0
    for node in range(4):
        text = (wal_testnet / f"node{node}" / "tendermint.log").read_text()
        for line in text.splitlines():
            parsed = parse_text_line(line)
            assert parsed is not None, line
            level, ns, module, height = _independent(line)
            assert parsed.level == level
            assert parsed.ts == ns
            assert parsed.kv.get("module") == module
            assert (int(parsed.kv["height"]) if "height" in parsed.kv else None) == height
            total += 1
    assert total == 61 + 63 + 63 + 64  # the four logs, every line checked


def test_events_from_the_real_logs(wal_testnet: Path) -> None:
    fmt = TextLogFormat()
    for node in range(4):
        data = (wal_testnet / f"node{node}" / "tendermint.log").read_bytes()
        assert fmt.sniff(data[:65536])
        report = ParseReport()
        rows = [r for t in fmt.parse(io.BytesIO(data), report) for r in t.to_pylist()]
        lines = data.decode().splitlines()
        executed = [int(_HEIGHT.search(x).group(1)) for x in lines if "Executed block" in x]  # type: ignore[union-attr]
        committed = [int(_HEIGHT.search(x).group(1)) for x in lines if "Committed state" in x]  # type: ignore[union-attr]
        assert [r["height"] for r in rows if r["kind"] == "block_executed"] == executed
        assert [r["height"] for r in rows if r["kind"] == "state_committed"] == committed
        assert executed == list(range(executed[0], 78)) and executed[0] >= 49
        # lines we have no event for are counted, never silently lost
        assert report.lines == len(lines)
        assert report.events + report.skipped_total == len(lines)
        assert set(report.skipped) <= {"unrecognized message"}


def test_identity_from_started_node_line(wal_testnet: Path) -> None:
    ident = TextLogFormat().identity(io.BytesIO((wal_testnet / "node0" / "tendermint.log").read_bytes()), 1 << 20)
    assert ident.p2p_id == "7e80d23025b485d2d00306dc77e466de414339c8"
    assert ident.moniker == "8C5F9DCCCCB737A9"
    assert ident.chain_id == "chain-H5iqVd"


def test_quoted_values_and_debug_p2p_lines() -> None:
    hexmsg = "3A0608021801200A"  # HasVote h=2 r=1? decoded below
    line = (
        f"D[2023-04-13|10:11:00.100] Received bytes                               module=p2p "
        f"peer=7e80d23025b485d2d00306dc77e466de414339c8@192.167.10.2:26656 chID=32 msgBytes={hexmsg}\n"
        "I[2023-04-13|10:11:00.200] Started node                                 module=main "
        'nodeInfo="{DefaultNodeID:abcd Moniker:x y}"\n'
        "garbage line\n"
    ).encode()
    report = ParseReport()
    rows = [r for t in TextLogFormat().parse(io.BytesIO(line), report) for r in t.to_pylist()]
    assert rows[0]["kind"] == "p2p_recv" and rows[0]["msg_type"] == "has_vote"
    assert rows[0]["peer"] == "7e80d23025b485d2d00306dc77e466de414339c8"
    assert rows[1]["kind"] == "node_info" and '"p2p_id":"abcd"' in rows[1]["extra"]
    assert report.skipped == {"not a log line": 1}
