"""Deploy latency: from a deploy's acceptance to its execution in a block.

Two latencies per processed deploy, each on one clock:

- ``inclusion`` — the timestamp of the block it was executed in minus the deploy's own timestamp (its
  header's, set by the client that signed it: DeployAccepted's, else the copy in DeployProcessed). Both are
  chain-side clocks (the client's and the proposer's); a deploy whose block is not stored has none
  (``block_not_stored``).
- ``receipt`` — this machine's first receipt of its DeployProcessed minus its first receipt of the
  DeployAccepted (over all nodes; this machine's clock only); none for a deploy never seen accepted
  (``processed_without_accepted``).

Also: ``accepted``, ``processed``, ``failed`` (execution result Failure) with ``failure_rate`` and the most
frequent error messages, ``expired`` (DeployExpired), and ``pending`` (accepted, neither processed nor expired
yet). Deploys are selected by their own timestamp (an expired deploy never seen accepted by its receipt).
With ``by_account`` the same per account (the ``account_limit`` accounts with most deploys).
"""

from __future__ import annotations

from typing import Any

from bftscope.families.casper.analytics.window import Window, stats_of, stats_sql
from bftscope.store.base import Store

__all__ = ["deploys"]

_BASE = """
WITH first_receipt AS (  -- over all nodes (the entity rows keep the first stored, not the earliest)
    SELECT type, key, min(received_ns) AS t FROM casper_event_log
    WHERE run_id = :run AND type IN ('DeployAccepted', 'DeployProcessed') GROUP BY type, key
), d AS (
    SELECT coalesce(a.deploy_hash, p.deploy_hash) AS deploy_hash, coalesce(a.account, p.account) AS account,
           coalesce(a.timestamp_ms, p.timestamp_ms) AS ts_ms, fa.t AS accepted_ns,
           p.deploy_hash IS NOT NULL AS processed, p.success AS success, p.error_message AS error_message,
           b.timestamp_ms AS block_ms, fp.t AS processed_ns,
           p.deploy_hash IS NOT NULL AND p.block_hash IS NOT NULL AND b.block_hash IS NULL AS block_missing,
           e.deploy_hash IS NOT NULL AS expired, a.deploy_hash IS NOT NULL AS accepted
    FROM casper_deploys_accepted a
    FULL OUTER JOIN casper_deploys_processed p ON p.run_id = a.run_id AND p.deploy_hash = a.deploy_hash
    LEFT JOIN casper_blocks b ON b.run_id = :run AND b.block_hash = p.block_hash
    LEFT JOIN first_receipt fa ON fa.type = 'DeployAccepted' AND fa.key = a.deploy_hash
    LEFT JOIN first_receipt fp ON fp.type = 'DeployProcessed' AND fp.key = p.deploy_hash
    LEFT JOIN casper_deploys_expired e ON e.run_id = :run AND e.deploy_hash = coalesce(a.deploy_hash, p.deploy_hash)
    WHERE coalesce(a.run_id, p.run_id) = :run
    UNION ALL
    SELECT e.deploy_hash, NULL, e.received_ns // 1000000, NULL, false, NULL, NULL, NULL, NULL, false, true, false
    FROM casper_deploys_expired e
    WHERE e.run_id = :run AND e.deploy_hash NOT IN (SELECT deploy_hash FROM casper_deploys_accepted WHERE run_id = :run)
      AND e.deploy_hash NOT IN (SELECT deploy_hash FROM casper_deploys_processed WHERE run_id = :run)
), w AS (
    SELECT *, block_ms - ts_ms AS inclusion_ms, (processed_ns - accepted_ns) / 1e6 AS receipt_ms FROM d
    WHERE ts_ms BETWEEN :lo AND :hi
)
"""


def _select(stats_incl: str, stats_rcpt: str) -> str:
    return ("count(*) FILTER (WHERE accepted), count(*) FILTER (WHERE processed), "
            "count(*) FILTER (WHERE processed AND NOT success), count(*) FILTER (WHERE expired), "
            "count(*) FILTER (WHERE accepted AND NOT processed AND NOT expired), "
            "count(*) FILTER (WHERE processed AND NOT accepted), count(*) FILTER (WHERE block_missing), "
            f"{stats_incl}, {stats_rcpt}")  # fmt: skip


def _answer(r: tuple[Any, ...]) -> dict[str, Any]:
    accepted, processed, failed, expired, pending, no_accept, no_block = (int(x) for x in r[:7])
    return {"accepted": accepted, "processed": processed, "failed": failed,
            "failure_rate": failed / processed if processed else None, "expired": expired, "pending": pending,
            "processed_without_accepted": no_accept, "block_not_stored": no_block,
            "inclusion": stats_of(r[7:14]), "receipt": stats_of(r[14:21])}  # fmt: skip


def deploys(store: Store, run_id: int, window: Window, *, by_account: bool = False,
            account_limit: int = 50, error_limit: int = 10) -> dict[str, Any]:  # fmt: skip
    """The deploys of the window (see the module's docstring)."""
    params = window.params(run_id)
    select = _select(stats_sql(store.dialect, "inclusion_ms"), stats_sql(store.dialect, "receipt_ms"))
    out = {"window": window.describe(), **_answer(store.query(f"{_BASE} SELECT {select} FROM w", params)[0])}
    errors = store.query(f"{_BASE} SELECT coalesce(error_message, ''), count(*) FROM w WHERE processed AND NOT success "
                         "GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT :lim", params | {"lim": error_limit})  # fmt: skip
    out["errors"] = [{"error_message": str(m), "count": int(n)} for m, n in errors]
    if by_account:
        rows = store.query(f"{_BASE} SELECT account, {select} FROM w WHERE account IS NOT NULL GROUP BY account "
                           "ORDER BY count(*) DESC, account LIMIT :lim", params | {"lim": account_limit})  # fmt: skip
        out["accounts"] = [{"account": str(r[0]), **_answer(r[1:])} for r in rows]
    return out
