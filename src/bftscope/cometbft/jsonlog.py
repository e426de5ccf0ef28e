"""CometBFT JSON logs (``log_format = "json"``): one JSON object per line.

Lines are decoded in blocks with one msgspec call per block (a JSON array made of the block's
lines); a block containing a bad line is re-decoded line by line so only the bad line is lost
and counted. Each decoded line goes through :class:`bftscope.cometbft.logmsgs.MessageMapper`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO

import msgspec
import pyarrow as pa

from bftscope.cometbft.identity import Identity
from bftscope.cometbft.logmsgs import LogLine, MessageMapper, Skip, scan_identity
from bftscope.ingest.lines import read_lines
from bftscope.ingest.report import ParseReport, flush_batch
from bftscope.model import EventBatch

__all__ = ["JsonLogFormat"]

_BLOCK = 512
_list_decoder = msgspec.json.Decoder(list[LogLine])
_one_decoder = msgspec.json.Decoder(LogLine)


def _decode_one(raw: bytes) -> LogLine | None:
    try:
        return _one_decoder.decode(raw)
    except (msgspec.DecodeError, ValueError):
        return None


class JsonLogFormat:
    name = "cometbft-json"
    splittable = True

    def sniff(self, head: bytes) -> bool:
        for raw in head.split(b"\n")[:20]:
            line = raw.strip()
            if not line:
                continue
            if not line.startswith(b"{"):
                return False
            try:
                obj = _one_decoder.decode(line)
            except (msgspec.DecodeError, ValueError):
                continue  # maybe the head cut a line; look at the next
            return obj.msg is not None and obj.ts is not None
        return False

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
        mapper = MessageMapper(received_b64=True)
        handler_for = mapper.handler
        exact = mapper.exact_handlers
        batch = EventBatch()
        rows = batch.rows
        append = rows.append
        skip = report.skip
        for pos, lines in read_lines(stream, report, start=start, end=end, max_line_bytes=max_line_bytes):
            report.lines += len(lines)
            for b in range(0, len(lines), _BLOCK):
                block = lines[b : b + _BLOCK]
                try:
                    objs: list[LogLine | None] = list(_list_decoder.decode(b"[" + b",".join(block) + b"]"))
                except (msgspec.DecodeError, ValueError):
                    objs = []
                if len(objs) != len(block):  # a bad line, or a line holding several values: go one by one
                    objs = []
                    for raw in block:
                        if not raw.strip():
                            objs.append(None)
                            continue
                        try:
                            objs.append(_one_decoder.decode(raw))
                        except (msgspec.DecodeError, ValueError):
                            objs.append(None)
                off = pos
                for raw, obj in zip(block, objs, strict=True):
                    seq = off
                    off += len(raw) + 1
                    if obj is None:
                        if raw.strip():
                            skip("not JSON", f"offset {seq}", raw)
                        continue
                    msg = obj.msg
                    if type(msg) is not str:
                        skip("no _msg", f"offset {seq}", raw)
                        continue
                    handler = exact.get(msg) or handler_for(msg)
                    if handler is None:
                        report.skipped["unrecognized message"] += 1
                        continue
                    ts = obj.ts  # text: the batch parses the whole column at once (model.EventBatch)
                    if type(ts) is not str:
                        skip("malformed timestamp", f"offset {seq}", raw)
                        continue
                    try:
                        append(handler(obj, ts, seq))
                    except Skip as exc:
                        skip(exc.reason, f"offset {seq}", raw)
                pos = off
            if len(rows) >= batch_rows:
                yield flush_batch(batch, report)
                rows = batch.rows
                append = rows.append
        if rows:
            yield flush_batch(batch, report)
