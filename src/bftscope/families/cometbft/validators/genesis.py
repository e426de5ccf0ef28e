"""The validator set a chain starts with, read from a node home's ``config/genesis.json``.

CometBFT starts height ``initial_height`` (``"0"`` or absent means 1) with the ``validators`` listed there:
each has ``power`` (a decimal string) and ``address`` (upper-case hex; when absent, the first 20 bytes of the
SHA-256 of an ed25519 ``pub_key``). A Cosmos SDK genesis usually lists none — its validators come from the
application at ``InitChain`` — and then nothing is known from genesis. Malformed entries are skipped and
counted, never guessed.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["GenesisSet", "parse_genesis", "read_genesis"]

# A real chain's genesis.json can be large (the application's state); the validators are all we read.
_MAX_GENESIS_BYTES = 256 * 1024 * 1024
_ADDRESS = re.compile(r"^[0-9A-Fa-f]{40}$")


@dataclass(frozen=True)
class GenesisSet:
    initial_height: int
    members: list[tuple[str, int]]  # (address, power) as listed
    skipped: dict[str, int] = field(default_factory=dict)  # reason → entries left out


def _address(entry: dict[str, Any]) -> str | None:
    addr = entry.get("address")
    if isinstance(addr, str) and _ADDRESS.match(addr):
        return addr.upper()
    key = entry.get("pub_key")
    value = key.get("value") if isinstance(key, dict) else None
    if isinstance(value, str):
        try:
            raw = base64.b64decode(value, validate=True)
        except ValueError:
            return None
        if len(raw) == 32:  # ed25519: the address is the truncated SHA-256 of the key
            return hashlib.sha256(raw).digest()[:20].hex().upper()
    return None


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return None


def parse_genesis(doc: Any) -> GenesisSet | None:
    """The set of a parsed ``genesis.json``; None when it lists no usable validator."""
    if not isinstance(doc, dict):
        return None
    height = _int(doc.get("initial_height")) or 1
    members: list[tuple[str, int]] = []
    skipped: dict[str, int] = {}
    seen: set[str] = set()
    for entry in doc.get("validators") or []:
        reason = None
        addr = _address(entry) if isinstance(entry, dict) else None
        power = _int(entry.get("power")) if isinstance(entry, dict) else None
        if addr is None:
            reason = "no address or ed25519 key"
        elif power is None or power <= 0:
            reason = "power missing or not positive"
        elif addr in seen:
            reason = "address listed twice"
        if reason is not None:
            skipped[reason] = skipped.get(reason, 0) + 1
            continue
        assert addr is not None and power is not None
        seen.add(addr)
        members.append((addr, power))
    if not members:
        return None
    return GenesisSet(max(height, 1), members, skipped)


def read_genesis(home: Path) -> GenesisSet | None:
    """The set in ``home/config/genesis.json``; None when the file is absent, too large, unreadable or lists
    no validator."""
    path = home / "config" / "genesis.json"
    try:
        if not path.is_file() or path.stat().st_size > _MAX_GENESIS_BYTES:
            return None
        return parse_genesis(json.loads(path.read_bytes()))
    except (OSError, ValueError, RecursionError):
        return None
