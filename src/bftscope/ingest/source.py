"""The interface of a file format parser, and the registry the pipeline picks from.

A :class:`FileFormat` recognises its format from the first bytes of a file, learns the node's
identity from a bounded prefix, and parses a byte range of the (decompressed) stream into Arrow
batches of event rows (:data:`bftscope.model.ROW_SCHEMA`). Parsers hold at most one batch and one
read buffer in memory, whatever the input size.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, BinaryIO, Protocol

import pyarrow as pa

from bftscope.ingest.parsereport import ParseReport

__all__ = ["FileFormat", "NodeIdentity"]


class NodeIdentity(Protocol):
    """Who a node is, as far as a file or a node home tells: the family's own type (its key and aliases)."""

    evidence: list[str]  # where each fact came from, for the summary

    @property
    def known(self) -> bool:
        """True when the node's key or an identifying alias was found."""
        ...

    def merge(self, other: Any) -> None:
        """Fill unknown facts from another identity of the same family."""
        ...

    def conflicts(self, other: Any) -> list[str]:
        """Facts the two identities disagree on, in words."""
        ...


class FileFormat(Protocol):
    name: str  # "cometbft-json", "cometbft-text", "cometbft-wal"
    splittable: bool  # can byte ranges be parsed independently (line formats: yes; WAL: no)

    def sniff(self, head: bytes) -> bool:
        """True when ``head`` (the first ≤64 KiB of the decompressed stream) is this format."""
        ...

    def identity(self, stream: BinaryIO, limit_bytes: int) -> NodeIdentity:
        """Identity facts found in at most ``limit_bytes`` from the start of the stream."""
        ...

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
        """Yield batches of rows for the records that *begin* in ``[start, end)``.

        ``stream`` is positioned anywhere; the parser seeks to ``start`` (only splittable formats
        get ``start > 0``). Bad input is counted in ``report``, never raised.
        """
        ...
