"""Finality-signature arrival per validator and per node followed.

**First sight of a block**: at a node, the earliest ``received_ns`` of that node's BlockAdded events for the
block (``casper_event_log``); over all nodes, the earliest of those. **A signature's delay at a node**: the
node's receipt of that validator's FinalitySignature for the block minus the node's first sight of the block
(one clock — this machine's — so no clock skew enters). A signature a node received *before* the block is a
negative delay and is counted in ``before_block`` (signatures are gossiped separately from blocks); a node
that received the signature but never the block (its main channel was down) has no delay for it:
``block_not_seen``. Per validator over all nodes (``node`` None) the delay is its first receipt at any node
minus the block's first sight at any node.

**Missing**: a block of an era with known weights, inside the window, for which a validator of that era's
weights has no signature — per node: among the blocks the node saw, signatures the node never received;
over all nodes: signatures no node received. A node whose connection was lost misses what it did not
receive and that is counted as missing here (the stream has no per-node "unknown"); compare the nodes'
counts — a signature missing at every node is the validator's, one missing at one node is the node's.
Blocks of eras without known weights are counted in ``blocks_without_weights`` and have no missing count.
Signatures of blocks not stored, or outside the window, are not in these answers.
"""

from __future__ import annotations

from typing import Any

from bftscope.families.casper.analytics.window import Window, stats_of, stats_sql
from bftscope.store.base import Store

__all__ = ["signatures"]

_BASE = """
WITH blk AS (
    SELECT block_hash, era_id FROM casper_blocks WHERE run_id = :run AND timestamp_ms BETWEEN :lo AND :hi
), seen AS (  -- the first sight of each block at each node
    SELECT l.source AS source, l.key AS block_hash, min(l.received_ns) AS t
    FROM casper_event_log l JOIN blk ON blk.block_hash = l.key
    WHERE l.run_id = :run AND l.type = 'BlockAdded' GROUP BY l.source, l.key
), first_seen AS (
    SELECT block_hash, min(t) AS t FROM seen GROUP BY block_hash
), sig AS (
    SELECT s.block_hash AS block_hash, s.public_key AS validator, blk.era_id AS era_id,
           s.block_hash || ' ' || s.public_key AS key
    FROM casper_signatures s JOIN blk ON blk.block_hash = s.block_hash WHERE s.run_id = :run
), got AS (  -- the first receipt of each signature at each node
    SELECT l.source AS source, sig.block_hash AS block_hash, sig.validator AS validator, min(l.received_ns) AS t
    FROM casper_event_log l JOIN sig ON sig.key = l.key
    WHERE l.run_id = :run AND l.type = 'FinalitySignature' GROUP BY l.source, sig.block_hash, sig.validator
), weighted AS (  -- every (block, validator) a signature is due for
    SELECT blk.block_hash AS block_hash, w.validator AS validator FROM blk
    JOIN casper_era_weights w ON w.run_id = :run AND w.era_id = blk.era_id
)
"""

_PER_NODE = """, d AS (
    SELECT g.source AS source, g.validator AS validator, (g.t - s.t) / 1e6 AS ms, s.t IS NULL AS unseen
    FROM got g LEFT JOIN seen s ON s.source = g.source AND s.block_hash = g.block_hash
)
SELECT validator, source, count(*), count(*) FILTER (WHERE ms < 0), count(*) FILTER (WHERE unseen), {stats}
FROM d GROUP BY validator, source
"""

_OVERALL = """, firsts AS (
    SELECT block_hash, validator, min(t) AS t FROM got GROUP BY block_hash, validator
), d AS (
    SELECT g.validator AS validator, (g.t - f.t) / 1e6 AS ms, f.t IS NULL AS unseen
    FROM firsts g LEFT JOIN first_seen f ON f.block_hash = g.block_hash
)
SELECT validator, count(*), count(*) FILTER (WHERE ms < 0), count(*) FILTER (WHERE unseen), {stats}
FROM d GROUP BY validator
"""

_MISSING_NODE = """
SELECT s.source, w.validator, count(*), count(*) FILTER (WHERE g.t IS NULL)
FROM seen s JOIN weighted w ON w.block_hash = s.block_hash
LEFT JOIN got g ON g.source = s.source AND g.block_hash = s.block_hash AND g.validator = w.validator
GROUP BY s.source, w.validator
"""

_MISSING = """, any_got AS (SELECT DISTINCT block_hash, validator FROM got)
SELECT w.validator, count(*), count(*) FILTER (WHERE a.block_hash IS NULL)
FROM weighted w LEFT JOIN any_got a ON a.block_hash = w.block_hash AND a.validator = w.validator
GROUP BY w.validator
"""

_BLOCKS = """
SELECT (SELECT count(*) FROM blk),
       (SELECT count(*) FROM blk WHERE era_id NOT IN (SELECT era_id FROM casper_era_weights WHERE run_id = :run))
"""


def _delay_row(validator: str, node: str | None, n: int, before: int, unseen: int,
               stats: tuple[Any, ...]) -> dict[str, Any]:  # fmt: skip
    return {"validator": validator, "node": node, "signatures": n, "before_block": before,
            "block_not_seen": unseen, "delay": stats_of(stats), "due": None, "missing": None}  # fmt: skip


def signatures(store: Store, run_id: int, window: Window) -> dict[str, Any]:
    """``blocks``, ``blocks_without_weights``, ``nodes`` (per node: blocks it saw), ``validators`` (per validator
    over all nodes) and ``per_node`` (per validator and node): ``signatures``, ``before_block``,
    ``block_not_seen``, ``delay`` (ms summary), ``due`` and ``missing`` (None for a validator of no known
    weights)."""
    params = window.params(run_id)
    stats = stats_sql(store.dialect, "ms")
    per_node: dict[tuple[str, str], dict[str, Any]] = {}
    for v, node, n, before, unseen, *s in store.query(_BASE + _PER_NODE.format(stats=stats), params):
        per_node[(str(v), str(node))] = _delay_row(str(v), str(node), int(n), int(before), int(unseen), tuple(s))
    for node, v, due, missing in store.query(_BASE + _MISSING_NODE, params):
        row = per_node.setdefault((str(v), str(node)),
                                  _delay_row(str(v), str(node), 0, 0, 0, (0,) + (None,) * 6))  # fmt: skip
        row["due"], row["missing"] = int(due), int(missing)
    overall: dict[str, dict[str, Any]] = {}
    for v, n, before, unseen, *s in store.query(_BASE + _OVERALL.format(stats=stats), params):
        overall[str(v)] = _delay_row(str(v), None, int(n), int(before), int(unseen), tuple(s))
    for v, due, missing in store.query(_BASE + _MISSING, params):
        row = overall.setdefault(str(v), _delay_row(str(v), None, 0, 0, 0, (0,) + (None,) * 6))
        row["due"], row["missing"] = int(due), int(missing)
    blocks, unweighted = store.query(_BASE + _BLOCKS, params)[0]
    nodes = store.query(_BASE + "SELECT source, count(*) FROM seen GROUP BY source ORDER BY source", params)
    return {
        "window": window.describe(),
        "blocks": int(blocks),
        "blocks_without_weights": int(unweighted),
        "nodes": [{"node": str(s), "blocks_seen": int(n)} for s, n in nodes],
        "validators": [overall[k] for k in sorted(overall)],
        "per_node": [per_node[k] for k in sorted(per_node)],
    }
