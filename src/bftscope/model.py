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

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from bftscope.timeutil import parse_rfc3339_ns

__all__ = ["NEUTRAL_KINDS", "OBSERVATION_GAP", "ROW_COLUMNS", "ROW_SCHEMA", "EventBatch", "Row", "SharedRowBatch"]

# Kinds any chain family's runs may hold: time a live source did not observe (ingest/livesink.py).
OBSERVATION_GAP = "observation_gap"
NEUTRAL_KINDS = (OBSERVATION_GAP,)

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
_TS_NS = pa.timestamp("ns", tz="UTC")


def _with_int_ts(row: Row) -> Row | None:
    """The row with its text ``ts`` parsed, or ``None`` when it is not a valid timestamp."""
    ts = row[0]
    if type(ts) is int:
        return row
    if type(ts) is not str:
        return None
    try:
        return (parse_rfc3339_ns(ts), *row[1:])
    except ValueError:
        return None


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
    not fit are dropped and counted by reason in ``dropped_reasons`` — the parser reports them as skipped.

    ``ts`` may be given as RFC 3339 text (log parsers do): the whole column is then parsed by one
    Arrow cast, ~100x cheaper than parsing line by line in Python. Rows whose text is not a valid
    timestamp are dropped under "malformed timestamp".
    """

    rows: list[Row] = field(default_factory=list)
    dropped_reasons: Counter[str] = field(default_factory=Counter)

    def __len__(self) -> int:
        return len(self.rows)

    def to_arrow(self) -> pa.Table:
        if not self.rows:
            return ROW_SCHEMA.empty_table()
        try:
            return self._convert(self.rows)
        except (OverflowError, pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError):
            good = []
            for r in self.rows:
                fixed = _with_int_ts(r)
                if fixed is None:
                    self.dropped_reasons["malformed timestamp"] += 1
                elif _row_fits(fixed):
                    good.append(fixed)
                else:
                    self.dropped_reasons["value out of range"] += 1
            return self._convert(good) if good else ROW_SCHEMA.empty_table()

    @staticmethod
    def _convert(rows: list[Row]) -> pa.Table:
        cols = list(zip(*rows, strict=True))
        ts = cols[0]
        if type(ts[0]) is str:
            ts_array = pa.array(ts, type=pa.string()).cast(_TS_NS).cast(pa.int64())
            cols[0] = ts_array
        arrays = [
            col if isinstance(col, pa.Array)
            else pa.array(col, type=pa.string()).dictionary_encode() if typ == _DICT
            else pa.array(col, type=typ)
            for col, (_, typ) in zip(cols, _COLUMNS, strict=True)
        ]
        return pa.Table.from_arrays(arrays, schema=ROW_SCHEMA)

    def take(self) -> pa.Table:
        """Convert to Arrow and empty the batch."""
        table = self.to_arrow()
        self.rows = []
        return table


# SharedRowBatch splits a row into the columns each log line has of its own and the rest.
_OWN = (0, 1, 10, 15)  # ts, kind, peer, seq
_SHARED = tuple(i for i in range(len(_COLUMNS)) if i not in _OWN)
_OWN_TYPES = (pa.string(), *(_COLUMNS[i][1] for i in _OWN[1:]), pa.int32())  # ts as text, kind, peer, seq, ref
_SHARED_TYPE = pa.struct([pa.field(*_COLUMNS[i]) for i in _SHARED])


@dataclass
class SharedRowBatch:
    """Rows of a log parser, stored as (ts, kind, peer, seq, ref) plus ``shared[ref]``, the other columns.

    Why: most lines of a debug log repeat another line's values except for their own time, kind,
    peer and offset (a vote is sent to every peer and received from several; packets come in a few
    sizes), so a parser that recognises a repeat appends a 5-tuple pointing at the row it repeats
    instead of building and converting a 17-column row again. Arrow then
    expands ``shared`` with one ``take`` per column. Texts are converted straight to dictionary
    columns and ``ts`` must be RFC 3339 text (parsed by one Arrow cast, as in :class:`EventBatch`).

    The result is the table :class:`EventBatch` would build from the same rows; when the fast
    conversion fails (a value that does not fit its column), the rows are rebuilt and handed to
    :class:`EventBatch`, whose per-row checks then drop and count the bad ones.

    Hot loops extend :attr:`own` by ``(ts, kind, peer, seq, ref)`` directly, with a ``ref`` that
    :meth:`add_row` returned for the current batch. ``own`` is flat (five values per line): extending
    by a tuple frees the tuple at once, for the next line to reuse, and each column is then one slice.
    """

    own: list[Any] = field(default_factory=list)
    shared: list[tuple[Any, ...]] = field(default_factory=list)
    dropped_reasons: Counter[str] = field(default_factory=Counter)

    def __len__(self) -> int:
        return len(self.own) // 5

    def add_row(self, row: Row) -> int:
        """Append a full row; returns its ``ref``, so later lines with the same shared values can repeat it."""
        ref = len(self.shared)
        self.shared.append((row[2], row[3], row[4], row[5], row[6], row[7], row[8], row[9], row[11], row[12],
                            row[13], row[14], row[16]))  # fmt: skip
        self.own.extend((row[0], row[1], row[10], row[15], ref))
        return ref

    def rows(self) -> list[Row]:
        """The batch as full rows (the slow path)."""
        out = []
        own = self.own
        for i in range(0, len(own), 5):
            ts, kind, peer, seq, ref = own[i : i + 5]
            s = self.shared[ref]
            out.append((ts, kind, *s[:8], peer, *s[8:12], seq, s[12]))
        return out

    def to_arrow(self) -> pa.Table:
        own = self.own
        if not own:
            return ROW_SCHEMA.empty_table()
        try:
            ts, kind, peer, seq, refs = (pa.array(own[i::5], type=t) for i, t in enumerate(_OWN_TYPES))
            ts = ts.cast(_TS_NS).cast(pa.int64())
            shared = pa.array(self.shared, type=_SHARED_TYPE).flatten()
        except (OverflowError, pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError):
            fallback = EventBatch(self.rows())
            table = fallback.to_arrow()
            self.dropped_reasons.update(fallback.dropped_reasons)
            return table
        cols = [c.take(refs) for c in shared]
        return pa.Table.from_arrays([ts, kind, *cols[:8], peer, *cols[8:12], seq, cols[12]], schema=ROW_SCHEMA)

    def take(self) -> pa.Table:
        """Convert to Arrow and empty the batch."""
        table = self.to_arrow()
        self.own = []
        self.shared = []
        return table
