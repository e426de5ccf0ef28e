"""Bounded-memory line splitting of a byte range of a stream.

Line formats are parsed in parallel byte ranges: a range owns every line that *begins* inside
it, so ranges can be cut anywhere and no line is read twice or lost. A line longer than
``max_line_bytes`` is skipped (counted) without ever being held whole in memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO

from bftscope.ingest.parsereport import ParseReport

__all__ = ["CHUNK_BYTES", "read_line_blocks", "read_lines"]

CHUNK_BYTES = 4 * 1024 * 1024


def read_lines(
    stream: BinaryIO,
    report: ParseReport,
    *,
    start: int = 0,
    end: int | None = None,
    max_line_bytes: int = 8 * 1024 * 1024,
    chunk_bytes: int = CHUNK_BYTES,
) -> Iterator[tuple[int, list[bytes]]]:
    """Yield ``(offset, lines)``: consecutive complete lines (without ``\\n``), the first at ``offset``.

    Only lines beginning in ``[start, end)`` are produced. ``report.bytes_read`` advances as
    bytes are consumed; over-long lines are counted under ``"line too long"``.
    """
    for pos, text in read_line_blocks(
        stream, report, start=start, end=end, max_line_bytes=max_line_bytes, chunk_bytes=chunk_bytes
    ):
        lines = text.split(b"\n")
        # Lines that did fit in one chunk may still be over the limit.
        if max_line_bytes < chunk_bytes:
            lines = _drop_long(lines, pos, max_line_bytes, report)
        yield pos, lines


def read_line_blocks(
    stream: BinaryIO,
    report: ParseReport,
    *,
    start: int = 0,
    end: int | None = None,
    max_line_bytes: int = 8 * 1024 * 1024,
    chunk_bytes: int = CHUNK_BYTES,
) -> Iterator[tuple[int, bytes]]:
    """:func:`read_lines` without the split: ``(offset, text)``, ``text.split(b"\\n")`` being the lines.

    Why: splitting a chunk makes one bytes object per line, which costs more than some parsers
    spend on the line itself; a parser that can work on the text keeps it whole. Lines over
    ``max_line_bytes`` that fit in one chunk are left in ``text`` (:func:`read_lines` drops them,
    which only happens when ``max_line_bytes < chunk_bytes``).
    """
    pos = start  # stream offset of buf[0]
    if start > 0:
        stream.seek(start - 1)
        # The byte before `start` tells whether a line begins exactly at `start`.
        prev = stream.read(1)
        if prev != b"\n":
            # We are inside a line owned by the previous range: drop through its end.
            while True:
                piece = stream.readline(chunk_bytes)
                if not piece:
                    return
                pos += len(piece)
                report.bytes_read += len(piece)
                if piece.endswith(b"\n"):
                    break
    buf = b""
    dropping = False  # inside an over-long line: discard until its newline
    while end is None or pos < end:
        data = stream.read(chunk_bytes)
        if not data:
            break
        report.bytes_read += len(data)
        if dropping:
            nl = data.find(b"\n")
            if nl < 0:
                pos += len(data)
                continue
            pos += nl + 1
            data = data[nl + 1 :]
            dropping = False
        buf = buf + data if buf else data
        last = buf.rfind(b"\n")
        if last < 0:
            if len(buf) > max_line_bytes:
                report.skip("line too long", f"offset {pos}", buf[:40])
                pos += len(buf)
                buf = b""
                dropping = True
            continue
        text = buf[:last]
        if end is not None and pos + last >= end:
            # Keep the lines that begin before `end`: cut at the newline ending the line that holds end - 1.
            cut = text.find(b"\n", end - pos - 1)
            if cut >= 0:
                text = text[:cut]
        yield pos, text
        pos += last + 1
        buf = buf[last + 1 :]
    if buf and (end is None or pos < end):
        if len(buf) > max_line_bytes:
            report.skip("line too long", f"offset {pos}", buf[:40])
        else:
            yield pos, buf


def _clip(lines: list[bytes], pos: int, end: int) -> list[bytes]:
    """Keep the lines that begin before ``end``."""
    off = pos
    for i, line in enumerate(lines):
        if off >= end:
            return lines[:i]
        off += len(line) + 1
    return lines


def _drop_long(lines: list[bytes], pos: int, limit: int, report: ParseReport) -> list[bytes]:
    if all(len(line) <= limit for line in lines):
        return lines
    out = []
    off = pos
    for line in lines:
        if len(line) > limit:
            report.skip("line too long", f"offset {off}", line[:40])
            out.append(b"")  # keep offsets of the following lines right
        else:
            out.append(line)
        off += len(line) + 1
    return out
