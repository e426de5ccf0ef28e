"""The node's own JSON of stored entities, for the sidecar's routes (``casper_payloads``, by ``out_id``).

The store keeps each entity's SSE ``data`` as received: ``{"BlockAdded": {…}}``. The sidecar answers with the
value inside the type tag, so :func:`inner` cuts that value out of the stored text without re-encoding it —
the bytes sent are the node's bytes, whitespace and key order included.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

from bftscope.families.casper.api.blocks import hash_variants
from bftscope.store.base import Store

__all__ = ["block_raw", "deploy_raw", "expired", "faults_raw", "inner", "latest_block_raw", "signatures_raw",
           "step_raw"]  # fmt: skip

_TAGGED = msgspec.json.Decoder(dict[str, msgspec.Raw])
_DEPLOY_TABLES: Final = {"accepted": "casper_deploys_accepted", "processed": "casper_deploys_processed",
                         "expired": "casper_deploys_expired"}  # fmt: skip


def inner(raw: str) -> bytes:
    """The value of a stored ``{"Type": value}`` payload, byte for byte."""
    tagged = _TAGGED.decode(raw.encode("utf-8"))
    return bytes(next(iter(tagged.values())))


def _one(store: Store, sql: str, params: list[Any]) -> bytes | None:
    rows = store.query(sql, params)
    return inner(rows[0][0]) if rows else None


def _joined(table: str) -> str:
    return f"SELECT p.raw FROM {table} e JOIN casper_payloads p ON p.run_id = e.run_id AND p.out_id = e.out_id "


def latest_block_raw(store: Store, run_id: int) -> bytes | None:
    return _one(store, _joined("casper_blocks") + "WHERE e.run_id = ? ORDER BY e.height DESC LIMIT 1", [run_id])


def block_raw(store: Store, run_id: int, *, block_hash: str | None = None, height: int | None = None) -> bytes | None:
    if block_hash is not None:
        return _one(store, _joined("casper_blocks") + "WHERE e.run_id = ? AND e.block_hash IN (?, ?)",
                    [run_id, *hash_variants(block_hash)])  # fmt: skip
    return _one(store, _joined("casper_blocks") + "WHERE e.run_id = ? AND e.height = ?", [run_id, height])


def deploy_raw(store: Store, run_id: int, which: str, deploy_hash: str) -> bytes | None:
    """The raw ``DeployAccepted``, ``DeployProcessed`` or ``DeployExpired`` (``which``) of a deploy."""
    return _one(store, _joined(_DEPLOY_TABLES[which]) + "WHERE e.run_id = ? AND e.deploy_hash IN (?, ?)",
                [run_id, *hash_variants(deploy_hash)])  # fmt: skip


def expired(store: Store, run_id: int, deploy_hash: str) -> bool:
    return bool(store.query("SELECT 1 FROM casper_deploys_expired WHERE run_id = ? AND deploy_hash IN (?, ?)",
                            [run_id, *hash_variants(deploy_hash)]))  # fmt: skip


def _many(store: Store, sql: str, params: list[Any]) -> list[bytes]:
    return [inner(r[0]) for r in store.query(sql + " ORDER BY e.out_id", params)]


def faults_raw(store: Store, run_id: int, *, public_key: str | None = None, era: int | None = None) -> list[bytes]:
    if public_key is not None:
        return _many(store, _joined("casper_faults") + "WHERE e.run_id = ? AND e.public_key IN (?, ?)",
                     [run_id, *hash_variants(public_key)])  # fmt: skip
    return _many(store, _joined("casper_faults") + "WHERE e.run_id = ? AND e.era_id = ?", [run_id, era])


def signatures_raw(store: Store, run_id: int, block_hash: str) -> list[bytes]:
    return _many(store, _joined("casper_signatures") + "WHERE e.run_id = ? AND e.block_hash IN (?, ?)",
                 [run_id, *hash_variants(block_hash)])  # fmt: skip


def step_raw(store: Store, run_id: int, era: int) -> bytes | None:
    return _one(store, _joined("casper_steps") + "WHERE e.run_id = ? AND e.era_id = ?", [run_id, era])
