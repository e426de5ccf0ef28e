"""Event batches for store tests: small, made of step events, in the parsers' row schema."""

from __future__ import annotations

import pyarrow as pa

from bftscope.model import EventBatch


def batch(n: int, ts0: int = 1_000) -> pa.Table:
    """``n`` step events, three per nanosecond from ``ts0``, heights 0..n-1."""
    b = EventBatch()
    for i in range(n):
        b.rows.append((ts0 + i // 3, "step", i, 0, "prevote", None, None, None, None, None, None, None, None, None,
                       None, i, None))  # fmt: skip
    return b.take()
