"""CometBFT/Tendermint plain-text logs (``log_format = "plain"``).

``I[2023-04-13|10:10:58.529] Executed block   module=state height=50 validTxs=0 invalidTxs=0``:
a level letter, a local timestamp with millisecond precision and no zone (read as UTC), the
message padded with spaces, then logfmt ``key=value`` pairs (values may be double-quoted). Each
line becomes a :class:`LogLine` and goes through the same mapper as JSON logs; byte values are
printed as upper-case hex in this format, so ``Received bytes`` is hex here.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, BinaryIO

import pyarrow as pa

from bftscope.families.cometbft.parse.identity import Identity, scan_identity
from bftscope.families.cometbft.parse.logmsgs import LogLine, MessageMapper, Skip
from bftscope.ingest.lines import read_lines
from bftscope.ingest.parsereport import ParseReport, flush_batch
from bftscope.model import EventBatch
from bftscope.timeutil import parse_rfc3339_ns

__all__ = ["TextLine", "TextLogFormat", "parse_text_line"]

_HEAD = re.compile(r"^([DIWE])\[(\d{4}-\d\d-\d\d)\|(\d\d:\d\d:\d\d(?:\.\d+)?)\] ")
_KV = re.compile(r'([A-Za-z_][\w.\-]*)=("(?:[^"\\]|\\.)*"|\S*)')
_KV_START = re.compile(r"\s(?=[A-Za-z_][\w.\-]*=)")
_FIELDS = frozenset(f for f in LogLine.__struct_fields__)
_RENAMED = {"_msg": "msg", "msg": "msg_", "from": "from_"}


class TextLine:
    """A parsed text line: level, timestamp (ns), message, and its key/values as strings."""

    __slots__ = ("kv", "level", "message", "ts")

    def __init__(self, level: str, ts: int, message: str, kv: dict[str, str]) -> None:
        self.level = level
        self.ts = ts
        self.message = message
        self.kv = kv


def _unquote(v: str) -> str:
    if len(v) >= 2 and v[0] == '"' and v[-1] == '"':
        return v[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    return v


def parse_text_line(text: str) -> TextLine | None:
    """``None`` when the line is not in the Tendermint text format."""
    m = _HEAD.match(text)
    if m is None:
        return None
    try:
        ts = parse_rfc3339_ns(f"{m.group(2)}T{m.group(3)}Z")
    except ValueError:
        return None
    rest = text[m.end() :]
    k = _KV_START.search(rest)
    if k is None:
        return TextLine(m.group(1), ts, rest.strip(), {})
    message = rest[: k.start()].strip()
    kv = {km.group(1): _unquote(km.group(2)) for km in _KV.finditer(rest, k.end())}
    return TextLine(m.group(1), ts, message, kv)


def _to_logline(t: TextLine) -> LogLine:
    args: dict[str, Any] = {"msg": t.message}
    for key, value in t.kv.items():
        name = _RENAMED.get(key, key)
        if name in _FIELDS and name != "msg":
            args[name] = value
    return LogLine(**args)


def _decode_one(raw: bytes) -> LogLine | None:
    t = parse_text_line(raw.decode("utf-8", "replace"))
    return _to_logline(t) if t is not None else None


class TextLogFormat:
    name = "cometbft-text"
    splittable = True

    def sniff(self, head: bytes) -> bool:
        seen = 0
        for raw in head.split(b"\n")[:20]:
            line = raw.strip()
            if not line:
                continue
            if _HEAD.match(line.decode("utf-8", "replace")) is None:
                return False
            seen += 1
        return seen > 0

    def identity(self, stream: BinaryIO, limit_bytes: int) -> Identity:
        return scan_identity(stream, limit_bytes, _decode_one)

    def parse(
        self,
        stream: BinaryIO,
        report: ParseReport,
        *,
        start: int = 0,
        end: int | None = None,
        batch_rows: int = 65_536,
        max_line_bytes: int = 8 * 1024 * 1024,
    ) -> Iterator[pa.Table]:
        mapper = MessageMapper(received_b64=False)
        batch = EventBatch()
        warned_zone = False
        for pos, lines in read_lines(stream, report, start=start, end=end, max_line_bytes=max_line_bytes):
            report.lines += len(lines)
            off = pos
            for raw in lines:
                seq = off
                off += len(raw) + 1
                text = raw.decode("utf-8", "replace").rstrip("\r")
                if not text.strip():
                    continue
                t = parse_text_line(text)
                if t is None:
                    report.skip("not a log line", f"offset {seq}", raw)
                    continue
                if not warned_zone:
                    report.warn("plain-text log timestamps have no zone and millisecond precision; read as UTC")
                    warned_zone = True
                handler = mapper.handler(t.message)
                if handler is None:
                    report.skipped["unrecognized message"] += 1
                    continue
                try:
                    batch.rows.append(handler(_to_logline(t), t.ts, seq))
                except Skip as exc:
                    report.skip(exc.reason, f"offset {seq}", raw)
            if len(batch) >= batch_rows:
                yield flush_batch(batch, report)
        if len(batch):
            yield flush_batch(batch, report)
