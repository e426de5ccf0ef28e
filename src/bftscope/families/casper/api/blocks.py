"""Blocks as the seed shows them, read from ``casper_blocks`` and ``casper_block_deploys``.

A block list is ordered by height, newest first, and filtered by era, proposer, block time (``from``
inclusive, ``to`` exclusive, epoch ms) and height range. The filters are fixed SQL fragments chosen by which
filters are set; every value is a bound parameter. Pages come two ways: the seed's ``LIMIT … OFFSET`` with a
count, or a keyset page after a cursor (``height < ?``: no offset, no count).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bftscope.families.casper.api.shapes import seed_block
from bftscope.store.base import Store

__all__ = ["BlockFilter", "block_detail", "block_page", "count_blocks", "hash_variants"]

_COLS = "block_hash, parent_hash, timestamp_ms, era_id, proposer, height"


def hash_variants(text: str) -> list[str]:
    """The text as given and in lower case: nodes send lower-case hex, clients may not."""
    return [text, text.lower()]


@dataclass(frozen=True)
class BlockFilter:
    era: int | None = None
    proposer: str | None = None
    from_ms: int | None = None
    to_ms: int | None = None
    min_height: int | None = None
    max_height: int | None = None

    def where(self, run_id: int) -> tuple[str, list[Any]]:
        sql: list[str] = ["run_id = ?"]
        params: list[Any] = [run_id]
        if self.era is not None:
            sql.append("era_id = ?")
            params.append(self.era)
        if self.proposer is not None:
            sql.append("proposer IN (?, ?)")
            params.extend(hash_variants(self.proposer))
        for clause, value in (("timestamp_ms >= ?", self.from_ms), ("timestamp_ms < ?", self.to_ms),
                              ("height >= ?", self.min_height), ("height <= ?", self.max_height)):  # fmt: skip
            if value is not None:
                sql.append(clause)
                params.append(value)
        return " AND ".join(sql), params


def count_blocks(store: Store, run_id: int, flt: BlockFilter) -> int:
    where, params = flt.where(run_id)
    return int(store.query(f"SELECT count(*) FROM casper_blocks WHERE {where}", params)[0][0])


def block_page(store: Store, run_id: int, flt: BlockFilter, *, limit: int, offset: int | None = None,
               below: int | None = None) -> list[dict[str, Any]]:  # fmt: skip
    """The seed's blocks (without ``deploys``), newest first: ``offset`` rows skipped (the seed's pages), or
    without an offset, a keyset page: those below height ``below`` (a cursor), or from the newest."""
    where, params = flt.where(run_id)
    if offset is None:
        if below is not None:
            where += " AND height < ?"
            params.append(below)
        params.append(limit)
        page = "LIMIT ?"
    else:
        params.extend([limit, offset])
        page = "LIMIT ? OFFSET ?"
    rows = store.query(f"SELECT {_COLS} FROM casper_blocks WHERE {where} ORDER BY height DESC {page}", params)
    return [seed_block(*r) for r in rows]


def block_detail(store: Store, run_id: int, block_hash: str) -> dict[str, Any] | None:
    """The seed's ``/block/{hash}``: the block and its deploy then transfer hashes, in block order."""
    rows = store.query(f"SELECT {_COLS} FROM casper_blocks WHERE run_id = ? AND block_hash IN (?, ?)",
                       [run_id, *hash_variants(block_hash)])  # fmt: skip
    if not rows:
        return None
    deploys = store.query(
        "SELECT deploy_hash FROM casper_block_deploys WHERE run_id = ? AND block_hash = ? "
        "ORDER BY CASE kind WHEN 'deploy' THEN 0 ELSE 1 END, ordinal", [run_id, rows[0][0]])  # fmt: skip
    block_hash, parent, ts, era, proposer, height = rows[0]
    return seed_block(block_hash, parent, ts, era, proposer, height, [str(r[0]) for r in deploys])
