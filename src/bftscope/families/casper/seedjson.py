"""The CasperLabs event-store's REST JSON of an entity (live-sources.md §C1 "REST"): what its WebSocket
clients received, one text frame per entity, and what its REST routes answer.

Block: ``{"blockHash", "parentHash", "timestamp", "eraId", "proposer", "state", "height", "deploys"}``;
deploy: ``{"deployHash", "account", "state", "cost", "errorMessage", "blockHash"}``. The seed stored a block
when it was finalized and completed it on ``BlockAdded`` (``state`` ``"added"``), a deploy when its block was
finalized and completed it on ``DeployProcessed`` (``"processed"``); bftscope stores both on those events, so
those are the states it shows. ``timestamp`` is ISO 8601 UTC with milliseconds, as the seed's ``DATE`` column
serialised. ``cost`` was an integer column: a JSON number (a decimal string only beyond 2^63, which no real
cost reaches, rather than lose digits). ``deploys`` lists the block's deploy then transfer hashes.
"""

from __future__ import annotations

import time
from typing import Any

__all__ = ["seed_block", "seed_deploy", "seed_json", "seed_timestamp"]

_I64 = 2**63 - 1


def seed_timestamp(ms: int | None) -> str | None:
    if ms is None:
        return None
    sec, milli = divmod(ms, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)) + f".{milli:03d}Z"


def seed_block(key: str, f: dict[str, Any]) -> dict[str, Any]:
    return {"blockHash": key, "parentHash": f.get("parent_hash"), "timestamp": seed_timestamp(f.get("timestamp_ms")),
            "eraId": f.get("era_id"), "proposer": f.get("proposer"), "state": "added", "height": f.get("height"),
            "deploys": [*f.get("deploy_hashes", ()), *f.get("transfer_hashes", ())]}  # fmt: skip


def _cost(cost: Any) -> int | str | None:
    if cost is None:
        return None
    try:
        n = int(cost)
    except (TypeError, ValueError):
        return str(cost)
    return n if abs(n) <= _I64 else str(cost)


def seed_deploy(key: str, f: dict[str, Any]) -> dict[str, Any]:
    return {"deployHash": key, "account": f.get("account"), "state": "processed", "cost": _cost(f.get("cost")),
            "errorMessage": f.get("error_message"), "blockHash": f.get("block_hash")}  # fmt: skip


def seed_json(type_: str, key: str, fields: dict[str, Any]) -> dict[str, Any] | None:
    """The seed's JSON of a ``BlockAdded`` or ``DeployProcessed`` entity; None for the types it never had."""
    if type_ == "BlockAdded":
        return seed_block(key, fields)
    if type_ == "DeployProcessed":
        return seed_deploy(key, fields)
    return None
