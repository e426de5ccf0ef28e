"""Today's file formats as decoders: the adapter between a :class:`~bftscope.ingest.source.FileFormat`
parser and the transports.

:meth:`FileFormatDecoder.decode_range` is the batch fast path — the parser reads the file transport's
seekable stream directly, exactly as before the split, so answers and speed are unchanged.
:meth:`feed`/:meth:`finish` are the generic decoder path for byte-chunk frames from any transport: a line
format parses every run of complete lines as it arrives and keeps the unfinished last line for the next
chunk; a format that cannot be split (the WAL) is held until :meth:`finish`.
"""

from __future__ import annotations

import io
from collections.abc import Iterator

import pyarrow as pa

from bftscope.ingest.parsereport import ParseReport
from bftscope.ingest.source import FileFormat
from bftscope.sources.base import Frame
from bftscope.sources.file import FileRangeTransport

__all__ = ["FileFormatDecoder"]


class FileFormatDecoder:
    """Decodes one format; ``report`` counts lines, events and skips over every range or frame it is given."""

    def __init__(
        self, fmt: FileFormat, *, batch_rows: int = 65_536, max_line_bytes: int = 8 * 1024 * 1024,
        report: ParseReport | None = None,
    ) -> None:  # fmt: skip
        self.format = fmt
        self.report = report if report is not None else ParseReport()
        self._batch_rows = batch_rows
        self._max_line_bytes = max_line_bytes
        self._held = bytearray()

    def decode_range(self, transport: FileRangeTransport) -> Iterator[pa.Table]:
        """Batches of the records that begin in the transport's range, read straight from its stream."""
        with transport.stream() as stream:
            yield from self.format.parse(
                stream, self.report, start=transport.start, end=transport.end,
                batch_rows=self._batch_rows, max_line_bytes=self._max_line_bytes,
            )  # fmt: skip

    def feed(self, frame: Frame) -> list[pa.Table]:
        self._held += frame.data
        if not self.format.splittable:
            return []
        cut = self._held.rfind(b"\n") + 1
        if cut == 0:
            return []
        complete = bytes(self._held[:cut])
        del self._held[:cut]
        return self._parse(complete)

    def finish(self) -> list[pa.Table]:
        rest, self._held = bytes(self._held), bytearray()
        return self._parse(rest) if rest else []

    def _parse(self, data: bytes) -> list[pa.Table]:
        tables = self.format.parse(io.BytesIO(data), self.report, batch_rows=self._batch_rows,
                                   max_line_bytes=self._max_line_bytes)  # fmt: skip
        return [t for t in tables if t.num_rows]
