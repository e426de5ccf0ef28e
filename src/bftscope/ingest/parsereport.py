"""What an ingest did to each input: lines read, events made, what was skipped and why.

Parsers never raise on bad input; they count it here under a short reason (``"not JSON"``,
``"bad CRC"`` …) and keep the first few examples with their position, so a user can find the
offending bytes. Reports from parallel ranges of one file are merged with :meth:`merge`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import pyarrow as pa

from bftscope.model import EventBatch, SharedRowBatch

__all__ = ["MAX_EXAMPLES", "ParseReport", "flush_batch"]

MAX_EXAMPLES = 5


@dataclass
class ParseReport:
    lines: int = 0  # lines (text formats) or records (WAL) read
    events: int = 0
    bytes_read: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)  # "line 12: not JSON: b'{oops'"
    warnings: list[str] = field(default_factory=list)

    def skip(self, reason: str, where: str, sample: bytes | str = b"") -> None:
        self.skipped[reason] += 1
        if len(self.examples) < MAX_EXAMPLES:
            shown = sample[:80] if sample else b""
            self.examples.append(f"{where}: {reason}" + (f": {shown!r}" if shown else ""))

    def warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)

    def merge(self, other: ParseReport) -> None:
        self.lines += other.lines
        self.events += other.events
        self.bytes_read += other.bytes_read
        self.skipped.update(other.skipped)
        for ex in other.examples:
            if len(self.examples) < MAX_EXAMPLES:
                self.examples.append(ex)
        for w in other.warnings:
            self.warn(w)

    @property
    def skipped_total(self) -> int:
        return sum(self.skipped.values())


def flush_batch(batch: EventBatch | SharedRowBatch, report: ParseReport) -> pa.Table:
    """Convert a parser's batch to Arrow, counting its events and any rows that did not fit."""
    table = batch.take()
    if batch.dropped_reasons:
        report.skipped.update(batch.dropped_reasons)
        batch.dropped_reasons.clear()
    report.events += table.num_rows
    return table
