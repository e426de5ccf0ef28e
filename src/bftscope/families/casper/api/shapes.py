"""The seed's JSON of a block and of a deploy, in one place: the REST routes build them from stored rows, and
the seed's WebSocket channels (which sent "the same JSON as REST") can build them from a new entity's decoded
fields (:func:`block_of`, :func:`processed_deploy_of`) without a query."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

__all__ = ["block_of", "iso_ms", "processed_deploy_of", "seed_block", "seed_deploy"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def iso_ms(ms: int) -> str:
    """Epoch milliseconds as JavaScript's ``Date.toISOString()`` writes them (the seed's timestamps)."""
    t = _EPOCH + timedelta(milliseconds=ms)
    return f"{t:%Y-%m-%dT%H:%M:%S}.{ms % 1000:03d}Z"


def _cost(text: Any) -> int | None:
    """A U512 decimal string as an exact integer (it may pass 2^64), None when absent or not a number."""
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def seed_block(block_hash: str, parent_hash: str, timestamp_ms: int, era_id: int, proposer: str, height: int,
               deploys: Sequence[str] | None = None) -> dict[str, Any]:  # fmt: skip
    """``{"blockHash", "parentHash", "timestamp", "eraId", "proposer", "state", "height"}`` and ``deploys`` when
    given (``/block/{hash}`` has them, ``/blocks`` does not)."""
    out: dict[str, Any] = {"blockHash": block_hash, "parentHash": parent_hash,
                           "timestamp": iso_ms(int(timestamp_ms)), "eraId": int(era_id), "proposer": proposer,
                           "state": "added", "height": int(height)}  # fmt: skip
    if deploys is not None:
        out["deploys"] = list(deploys)
    return out


def seed_deploy(deploy_hash: str, account: str | None, state: str, cost: Any, error_message: str | None,
                block_hash: str | None) -> dict[str, Any]:  # fmt: skip
    return {"deployHash": deploy_hash, "account": account, "state": state, "cost": _cost(cost),
            "errorMessage": error_message, "blockHash": block_hash}  # fmt: skip


def block_of(fields: Mapping[str, Any]) -> dict[str, Any]:
    """The seed's ``/block/{hash}`` JSON of a BlockAdded's decoded fields (docs/casper.md "Entities")."""
    return seed_block(fields["block_hash"], fields["parent_hash"], fields["timestamp_ms"], fields["era_id"],
                      fields["proposer"], fields["height"],
                      [*fields["deploy_hashes"], *fields["transfer_hashes"]])  # fmt: skip


def processed_deploy_of(fields: Mapping[str, Any]) -> dict[str, Any]:
    """The seed's ``/deploy/{hash}`` JSON of a DeployProcessed's decoded fields."""
    return seed_deploy(fields["deploy_hash"], fields["account"], "processed", fields["cost"], fields["error_message"],
                       fields["block_hash"])  # fmt: skip
