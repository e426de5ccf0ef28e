"""The file transport: a byte range of a (maybe gzipped) input file, which is what the batch pipeline reads.

Two ways to read it. The batch fast path hands the decoder the open, seekable stream itself
(:meth:`FileRangeTransport.stream`), because today's parsers seek to their range and read with large
buffers — chunking the bytes through frames would only cost copies. The generic path
(``open``/``receive``/``close``) delivers the range as byte-chunk frames, like any other transport, so a file
can also feed the live runner or a decoder that only knows frames. ``position`` is the raw (compressed)
file's offset, which the pipeline reports as progress; ``cut`` says why a ``.gz`` ended early.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import BinaryIO

from bftscope.errors import TransportClosed, TransportError
from bftscope.ingest.discover import InputFile, gzip_cut, open_input
from bftscope.sources.base import Frame, Transport

__all__ = ["FileRangeTransport"]

_CHUNK = 1 << 20


class FileRangeTransport(Transport):
    """Bytes ``[start, end)`` of ``file``'s decompressed stream (``end=None``: to the end). A frame's ``id``
    is the decompressed offset after it, so a resume continues where the consumer stopped."""

    finite = True

    def __init__(self, file: InputFile, start: int = 0, end: int | None = None, *, chunk_size: int = _CHUNK) -> None:
        self.file = file
        self.name = f"file:{file.name}"
        self.start = start
        self.end = end
        self._chunk = chunk_size
        self._cm: contextlib.AbstractContextManager[tuple[BinaryIO, BinaryIO]] | None = None
        self._stream: BinaryIO | None = None
        self._raw: BinaryIO | None = None
        self._offset = start
        self.last_cut: str | None = None
        self.last_position = 0

    @contextlib.contextmanager
    def stream(self) -> Iterator[BinaryIO]:
        """The batch fast path: the open decompressed stream; the decoder seeks to ``start`` itself."""
        with open_input(self.file) as (stream, raw):
            self._stream, self._raw = stream, raw
            try:
                yield stream
            finally:
                # kept for the report after the file is closed: where reading stopped, and why if early
                self.last_cut, self.last_position = gzip_cut(stream), raw.tell()
                self._stream = None

    @property
    def position(self) -> int:
        """Offset in the raw file reached so far (progress of compressed files included)."""
        return self._raw.tell() if self._raw is not None and not self._raw.closed else 0

    @property
    def cut(self) -> str | None:
        """Why a gzip stream stopped before its data did, or None (see :func:`gzip_cut`)."""
        return gzip_cut(self._stream) if self._stream is not None else None

    async def open(self, resume_from: str | None = None) -> None:
        await self.close()
        self._offset = int(resume_from) if resume_from is not None else self.start
        try:
            self._cm = open_input(self.file)
            stream, raw = self._cm.__enter__()
            self._stream, self._raw = stream, raw
            if self._offset:
                stream.seek(self._offset)
        except OSError as exc:
            await self.close()
            raise TransportError(f"cannot read {self.file.name}: {exc}") from exc

    async def receive(self) -> Frame:
        if self._stream is None:
            raise TransportError("not open")
        want = self._chunk if self.end is None else min(self._chunk, self.end - self._offset)
        data = self._stream.read(want) if want > 0 else b""
        if not data:
            raise TransportClosed(f"end of {self.file.name}")
        self._offset += len(data)
        return Frame(data, id=str(self._offset))

    async def close(self) -> None:
        cm, self._cm = self._cm, None
        self._stream = None
        if cm is not None:
            cm.__exit__(None, None, None)
