"""Deploys as the seed shows them: what bftscope knows of each from its accepted, processed and expired events.

A deploy's seed state is ``processed`` once a ``DeployProcessed`` is stored (whatever its outcome: the seed's
state for a failed execution too), else ``expired`` after a ``DeployExpired``, else ``accepted``; a deploy
bftscope has none of these events for is not found. ``account`` comes from the processed event, else the
accepted one (an expired deploy whose acceptance was not seen has none); ``cost`` and ``errorMessage`` from
the processed event, ``blockHash`` is the block that processed it.

An account's deploys are those whose processed or accepted event names it, ordered by the height of the
processing block, newest first, then deploys not yet in a block bftscope holds, each group by hash; filtered
by state (``failed``: processed with a failed execution) and the deploy's own timestamp (``from`` inclusive,
``to`` exclusive, epoch ms). As for blocks, a page is an offset with a count or a keyset page after a cursor.
A deploy whose block arrives while a client walks moves from the not-yet-in-a-block group into place.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bftscope.families.casper.api.blocks import hash_variants
from bftscope.families.casper.api.cursors import DeployKey
from bftscope.families.casper.api.shapes import seed_deploy
from bftscope.store.base import Store

__all__ = ["DeployFilter", "account_deploys", "count_account_deploys", "deploy_detail"]

# Every deploy of an account with its seed fields, its block height and its timestamp (one row each).
_ACCOUNT = """
WITH d AS (
    SELECT p.deploy_hash, p.account, 'processed' AS state, p.success, p.cost, p.error_message, p.block_hash,
           coalesce(p.timestamp_ms, a.timestamp_ms) AS timestamp_ms
    FROM casper_deploys_processed p
    LEFT JOIN casper_deploys_accepted a ON a.run_id = p.run_id AND a.deploy_hash = p.deploy_hash
    WHERE p.run_id = ? AND p.account IN (?, ?)
    UNION ALL
    SELECT a.deploy_hash, a.account, CASE WHEN x.deploy_hash IS NULL THEN 'accepted' ELSE 'expired' END,
           NULL, NULL, NULL, NULL, a.timestamp_ms
    FROM casper_deploys_accepted a
    LEFT JOIN casper_deploys_expired x ON x.run_id = a.run_id AND x.deploy_hash = a.deploy_hash
    WHERE a.run_id = ? AND a.account IN (?, ?) AND NOT EXISTS (
        SELECT 1 FROM casper_deploys_processed q WHERE q.run_id = a.run_id AND q.deploy_hash = a.deploy_hash)
)
SELECT d.deploy_hash, d.account, d.state, d.cost, d.error_message, d.block_hash, b.height
FROM d LEFT JOIN casper_blocks b ON b.run_id = ? AND b.block_hash = d.block_hash
"""
_ORDER = " ORDER BY b.height DESC NULLS LAST, d.deploy_hash"


@dataclass(frozen=True)
class DeployFilter:
    states: tuple[str, ...] = ()
    from_ms: int | None = None
    to_ms: int | None = None

    def where(self) -> tuple[str, list[Any]]:
        sql: list[str] = []
        params: list[Any] = []
        if self.states:
            wanted = []
            for state in self.states:
                wanted.append("(d.state = 'processed' AND NOT d.success)" if state == "failed" else "d.state = ?")
                if state != "failed":
                    params.append(state)
            sql.append("(" + " OR ".join(wanted) + ")")
        if self.from_ms is not None:
            sql.append("d.timestamp_ms >= ?")
            params.append(self.from_ms)
        if self.to_ms is not None:
            sql.append("d.timestamp_ms < ?")
            params.append(self.to_ms)
        return " AND ".join(sql) or "TRUE", params


def _base(run_id: int, account: str, flt: DeployFilter) -> tuple[str, list[Any]]:
    where, params = flt.where()
    return _ACCOUNT + f" WHERE {where}", [run_id, *hash_variants(account), run_id, *hash_variants(account), run_id,
                                          *params]  # fmt: skip


def count_account_deploys(store: Store, run_id: int, account: str, flt: DeployFilter) -> int:
    sql, params = _base(run_id, account, flt)
    return int(store.query(f"SELECT count(*) FROM ({sql}) c", params)[0][0])


def account_deploys(store: Store, run_id: int, account: str, flt: DeployFilter, *, limit: int,
                    offset: int | None = None, after: DeployKey | None = None,
                    ) -> list[tuple[dict[str, Any], DeployKey]]:  # fmt: skip
    """The seed's deploys of ``account`` with each one's sort key: ``offset`` rows skipped (the seed's pages), or
    without an offset, a keyset page: those after the key ``after`` (a cursor), or from the first."""
    sql, params = _base(run_id, account, flt)
    if offset is not None:
        rows = store.query(sql + _ORDER + " LIMIT ? OFFSET ?", [*params, limit, offset])
    else:
        if after is not None:
            height, deploy_hash = after
            if height is None:  # past every deploy in a block: the rest of those without one
                sql += " AND b.height IS NULL AND d.deploy_hash > ?"
                params.append(deploy_hash)
            else:
                sql += " AND (b.height < ? OR (b.height = ? AND d.deploy_hash > ?) OR b.height IS NULL)"
                params.extend([height, height, deploy_hash])
        rows = store.query(sql + _ORDER + " LIMIT ?", [*params, limit])
    return [(seed_deploy(*r[:6]), (None if r[6] is None else int(r[6]), str(r[0]))) for r in rows]


def deploy_detail(store: Store, run_id: int, deploy_hash: str) -> dict[str, Any] | None:
    """The seed's ``/deploy/{hash}``, or None when bftscope holds none of the deploy's events."""
    keys = hash_variants(deploy_hash)
    rows = store.query(
        "SELECT p.deploy_hash, p.account, p.cost, p.error_message, p.block_hash FROM casper_deploys_processed p "
        "WHERE p.run_id = ? AND p.deploy_hash IN (?, ?)", [run_id, *keys])  # fmt: skip
    if rows:
        h, account, cost, error, block = rows[0]
        return seed_deploy(h, account, "processed", cost, error, block)
    expired = store.query("SELECT deploy_hash FROM casper_deploys_expired WHERE run_id = ? AND deploy_hash IN (?, ?)",
                          [run_id, *keys])  # fmt: skip
    accepted = store.query("SELECT deploy_hash, account FROM casper_deploys_accepted WHERE run_id = ? "
                           "AND deploy_hash IN (?, ?)", [run_id, *keys])  # fmt: skip
    if not expired and not accepted:
        return None
    h = accepted[0][0] if accepted else expired[0][0]
    return seed_deploy(h, accepted[0][1] if accepted else None, "expired" if expired else "accepted", None, None, None)
