"""Synthetic Casper events for the subscription tests and the bench: blocks whose deploys are processed by
a few accounts, and finality signatures, decoded by the real decoder from node-shaped JSON."""

from __future__ import annotations

import json
from typing import Any

from bftscope.families.casper.decoder import CasperDecoder
from bftscope.families.casper.model import CasperEvent
from bftscope.sources.base import Frame

__all__ = ["account", "block_hash", "chain", "decode", "deploy_hash", "proposer"]


def block_hash(height: int) -> str:
    return f"{height:064x}"


def deploy_hash(height: int, i: int = 0) -> str:
    return f"d{height:055x}{i:08x}"


def account(n: int) -> str:
    return "01" + f"{n:064x}"


def proposer(n: int) -> str:
    return "02" + f"{n:064x}"


def _block(height: int, era: int, deploys: list[str], prop: str) -> dict[str, Any]:
    return {"BlockAdded": {"block_hash": block_hash(height), "block": {
        "hash": block_hash(height),
        "header": {"parent_hash": block_hash(height - 1), "state_root_hash": "ab" * 32, "body_hash": "cd" * 32,
                   "random_bit": True, "accumulated_seed": "ef" * 32, "era_end": None,
                   "timestamp": "2023-01-01T09:55:25.312Z", "era_id": era, "height": height,
                   "protocol_version": "1.5.2"},
        "body": {"proposer": prop, "deploy_hashes": deploys, "transfer_hashes": []}, "proofs": []}}}  # fmt: skip


def _processed(dh: str, acct: str, bh: str) -> dict[str, Any]:
    return {"DeployProcessed": {"deploy_hash": dh, "account": acct, "timestamp": "2023-01-01T10:07:00.401Z",
                                "ttl": "30m", "dependencies": [], "block_hash": bh,
                                "execution_result": {"Success": {"effect": {"operations": [], "transforms": []},
                                                                 "transfers": [], "cost": "100000000"}}}}  # fmt: skip


def _sig(bh: str, era: int, n: int) -> dict[str, Any]:
    return {"FinalitySignature": {"block_hash": bh, "era_id": era, "signature": "01" + "cd" * 64,
                                  "public_key": proposer(n)}}  # fmt: skip


def decode(source: str, channel: str, bodies: list[tuple[dict[str, Any], int]]) -> list[CasperEvent]:
    dec = CasperDecoder(source, channel)
    out: list[CasperEvent] = []
    for body, event_id in bodies:
        out.extend(dec.feed(Frame(json.dumps(body).encode(), id=str(event_id))))
    assert not dec.report.skipped, dec.report.skipped
    return out


def chain(first: int, count: int, *, deploys: int = 1, accounts: int = 2, sigs: int = 0, era_len: int = 10,
          source: str = "n1:9999") -> list[CasperEvent]:  # fmt: skip
    """Heights ``first``… ``first + count - 1``: each a BlockAdded (era ``height // era_len``, proposer
    ``height % 3``) with ``deploys`` deploys, their DeployProcessed (account ``(height + i) % accounts``), and
    ``sigs`` finality signatures; in node order (main channel, then sigs)."""
    main: list[tuple[dict[str, Any], int]] = []
    sig: list[tuple[dict[str, Any], int]] = []
    for h in range(first, first + count):
        dhs = [deploy_hash(h, i) for i in range(deploys)]
        main.append((_block(h, h // era_len, dhs, proposer(h % 3)), h * 100))
        main.extend((_processed(d, account((h + i) % accounts), block_hash(h)), h * 100 + 1 + i)
                    for i, d in enumerate(dhs))  # fmt: skip
        sig.extend((_sig(block_hash(h), h // era_len, n), h * 100 + n) for n in range(sigs))
    return decode(source, "main", main) + decode(source, "sigs", sig)
