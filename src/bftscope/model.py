"""The normalized event model shared by every source and store.

One wide, typed, append-only ``events`` table. A parser produces rows with the columns in
:data:`ROW_COLUMNS`; the store's writer adds the columns that only it knows (run, node, source,
event id). Columns that do not apply to an event are ``None``. Fields without a column of their
own go into ``extra``, a small JSON object.

Units: every timestamp is Unix **nanoseconds** UTC (``ts`` is the observing node's local clock,
``signer_ts`` the signer's own timestamp inside a vote or proposal). Hex identifiers (validator
addresses, block hashes) are upper-case, as CometBFT prints them; peer ids are the lower-case p2p
node ids.

See ``docs/event-model.md`` for the meaning of each kind.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

__all__ = ["ROW_COLUMNS", "ROW_SCHEMA", "EventBatch", "Row"]

# (name, arrow type) in row order. Keep in step with the store migrations.
# Low-cardinality text (kinds, peer ids, addresses, hashes) travels dictionary-encoded: smaller
# batches between processes and a faster insert; stores see plain text columns.
_DICT = pa.dictionary(pa.int32(), pa.string())

_COLUMNS: tuple[tuple[str, Any], ...] = (
    ("ts", pa.int64()),
    ("kind", _DICT),
    ("height", pa.int64()),
    ("round", pa.int32()),
    ("step", _DICT),
    ("vote_type", _DICT),
    ("msg_type", _DICT),
    ("validator", _DICT),
    ("validator_index", pa.int32()),
    ("part_index", pa.int32()),
    ("peer", _DICT),
    ("block_hash", _DICT),
    ("signer_ts", pa.int64()),
    ("msg_key", pa.int64()),
    ("size", pa.int32()),
    ("seq", pa.int64()),
    ("extra", pa.string()),
)

ROW_COLUMNS: tuple[str, ...] = tuple(name for name, _ in _COLUMNS)
ROW_SCHEMA = pa.schema([pa.field(name, typ) for name, typ in _COLUMNS])

# A row is a plain tuple in ROW_COLUMNS order: tuples are the cheapest thing to build per line.
Row = tuple[Any, ...]


_INT_RANGES = {
    i: ((-(1 << 31), (1 << 31) - 1) if typ == pa.int32() else (-(1 << 63), (1 << 63) - 1))
    for i, (_, typ) in enumerate(_COLUMNS)
    if pa.types.is_integer(typ)
}


_TEXT = [i for i, (_, t) in enumerate(_COLUMNS) if t in (pa.string(), _DICT)]


def _row_fits(row: Row) -> bool:
    if len(row) != len(_COLUMNS):
        return False
    for i, (lo, hi) in _INT_RANGES.items():
        v = row[i]
        if v is not None and (type(v) is not int or not lo <= v <= hi):
            return False
    return all(row[i] is None or isinstance(row[i], str) for i in _TEXT)


@dataclass
class EventBatch:
    """Rows accumulated by a parser, converted to Arrow in one go when full.

    Conversion is columnar and fast; a value that does not fit its column (a corrupt line's
    20-digit "round") would fail the whole batch, so then each row is checked and the rows that do
    not fit are dropped and counted in ``dropped`` — the parser reports them as skipped.
    """

    rows: list[Row] = field(default_factory=list)
    dropped: int = 0

    def __len__(self) -> int:
        return len(self.rows)

    def to_arrow(self) -> pa.Table:
        if not self.rows:
            return ROW_SCHEMA.empty_table()
        try:
            return self._convert(self.rows)
        except (OverflowError, pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError):
            good = [r for r in self.rows if _row_fits(r)]
            self.dropped += len(self.rows) - len(good)
            return self._convert(good) if good else ROW_SCHEMA.empty_table()

    @staticmethod
    def _convert(rows: list[Row]) -> pa.Table:
        cols = list(zip(*rows, strict=True))
        arrays = [
            pa.array(col, type=pa.string()).dictionary_encode() if typ == _DICT else pa.array(col, type=typ)
            for col, (_, typ) in zip(cols, _COLUMNS, strict=True)
        ]
        return pa.Table.from_arrays(arrays, schema=ROW_SCHEMA)

    def take(self) -> pa.Table:
        """Convert to Arrow and empty the batch."""
        table = self.to_arrow()
        self.rows = []
        return table
