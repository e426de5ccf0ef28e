"""Identity facts from a CometBFT node home directory (``config/`` beside ``data/``).

``config/node_key.json`` gives the p2p id (hex of the first 20 bytes of SHA-256 of the ed25519
public key), ``config/priv_validator_key.json`` the validator address, ``config/config.toml`` the
moniker, ``config/genesis.json`` the chain id and the validators' names. Private keys are never
read beyond their public half, never stored and never logged.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import tomllib
from pathlib import Path
from typing import Any

from bftscope.cometbft.identity import Identity

__all__ = ["genesis_validator_names", "home_identity", "is_node_home"]

_MAX_CONFIG_BYTES = 4 * 1024 * 1024


def is_node_home(path: Path) -> bool:
    return path.is_dir() and (
        (path / "config" / "config.toml").is_file()
        or (path / "config" / "genesis.json").is_file()
        or (path / "data" / "cs.wal").is_dir()
    )


def _read_json(path: Path) -> Any:
    if not path.is_file() or path.stat().st_size > _MAX_CONFIG_BYTES:
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _pub_key_bytes(doc: Any) -> bytes | None:
    try:
        value = doc["pub_key"]["value"] if "pub_key" in doc else None
        return base64.b64decode(value) if isinstance(value, str) else None
    except (TypeError, KeyError, ValueError):
        return None


def home_identity(home: Path) -> Identity:
    ident = Identity()
    cfg = home / "config"
    node_key = _read_json(cfg / "node_key.json")
    if isinstance(node_key, dict):
        # node_key.json holds only the private key; its second half is the ed25519 public key.
        try:
            priv = base64.b64decode(node_key["priv_key"]["value"])
            if len(priv) == 64:
                ident.p2p_id = hashlib.sha256(priv[32:]).digest()[:20].hex()
                ident.evidence.append("config/node_key.json")
        except (TypeError, KeyError, ValueError):
            pass
    pv = _read_json(cfg / "priv_validator_key.json")
    if isinstance(pv, dict) and isinstance(pv.get("address"), str):
        ident.validator = pv["address"].upper()
        ident.evidence.append("config/priv_validator_key.json")
    toml_path = cfg / "config.toml"
    if toml_path.is_file() and toml_path.stat().st_size <= _MAX_CONFIG_BYTES:
        try:
            conf = tomllib.loads(toml_path.read_text(encoding="utf-8"))
            moniker = conf.get("moniker")
            if isinstance(moniker, str) and moniker:
                ident.moniker = moniker
                ident.evidence.append("config/config.toml moniker")
        except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
            pass
    genesis = _read_json(cfg / "genesis.json")
    if isinstance(genesis, dict) and isinstance(genesis.get("chain_id"), str):
        ident.chain_id = genesis["chain_id"]
    return ident


_ADDR = re.compile(r"^[0-9A-Fa-f]{40}$")


def genesis_validator_names(home: Path) -> dict[str, str]:
    """Validator address → name from ``config/genesis.json`` (empty when absent)."""
    genesis = _read_json(home / "config" / "genesis.json")
    out: dict[str, str] = {}
    if isinstance(genesis, dict):
        for v in genesis.get("validators") or []:
            if isinstance(v, dict) and isinstance(v.get("address"), str) and _ADDR.match(v["address"]):
                name = v.get("name")
                if isinstance(name, str) and name:
                    out[v["address"].upper()] = name
    return out
