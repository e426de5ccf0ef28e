"""Identity facts from a CometBFT node home directory (``config/`` beside ``data/``).

``config/node_key.json`` gives the p2p id (hex of the first 20 bytes of SHA-256 of the ed25519
public key), ``config/priv_validator_key.json`` the validator address, ``config/config.toml`` the
moniker, ``config/genesis.json`` the chain id and the validators' names. Private keys are never
read beyond their public half, never stored and never logged.

:func:`home_network` reads what a home says about *other* nodes — the ``persistent_peers`` and ``seeds``
of ``config.toml`` (``<id>@<host>:<port>``), its ``external_address``, and the memos of ``genesis.json``
gentxs (``<id>@<ip>:<port>`` of each genesis validator) — from which :mod:`bftscope.families.cometbft.analytics.peerids`
infers p2p ids that no ``node_key.json`` gives.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import tomllib
from pathlib import Path
from typing import Any

from bftscope.families.cometbft.parse.identity import Identity

__all__ = ["genesis_validator_names", "home_identity", "home_network", "is_node_home"]

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


def _read_toml(path: Path) -> dict[str, Any] | None:
    if not path.is_file() or path.stat().st_size > _MAX_CONFIG_BYTES:
        return None
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
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
    conf = _read_toml(cfg / "config.toml")
    if conf is not None:
        moniker = conf.get("moniker")
        if isinstance(moniker, str) and moniker:
            ident.moniker = moniker
            ident.evidence.append("config/config.toml moniker")
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


_PEER = re.compile(r"^([0-9a-fA-F]{40})@(\[[^\]]*\]|[^:@,\s]*)(?::\d+)?$")


def _peer_entries(value: Any) -> list[list[str]]:
    """``[id, host]`` of each ``<id>@<host>:<port>`` entry of a comma-separated peer list (others ignored)."""
    out = []
    for item in value.split(",") if isinstance(value, str) else []:
        m = _PEER.match(item.strip())
        if m:
            out.append([m.group(1).lower(), m.group(2).strip("[]").lower()])
    return out


def _host(address: Any) -> str | None:
    """The host of an ``external_address`` (``host:port``, ``tcp://host:port``), lower-case."""
    if not isinstance(address, str) or not address.strip():
        return None
    rest = address.strip().split("://")[-1]
    host = rest.rsplit(":", 1)[0] if ":" in rest else rest
    return host.strip("[]").lower() or None


def _gentx_ids(genesis: Any) -> list[dict[str, str]]:
    """``{"id", "validator" (when its key decodes), "moniker"}`` of each gentx whose memo names a node id.

    The memo of a gentx is the validator's own ``<id>@<ip>:<port>``; its MsgCreateValidator carries the
    consensus public key (address = first 20 bytes of its SHA-256) and the moniker. Both the protobuf-JSON
    (Cosmos SDK ≥ 0.40) and the amino-JSON layout are read; a bech32 key (old SDKs) is matched by moniker only.
    """
    try:
        txs = genesis["app_state"]["genutil"]["gen_txs"]
    except (TypeError, KeyError):
        return []
    out = []
    for tx in txs if isinstance(txs, list) else []:
        if not isinstance(tx, dict):
            continue
        body = tx.get("body") or tx.get("value") or {}
        memo = body.get("memo") if isinstance(body, dict) else None
        m = _PEER.match(memo.strip()) if isinstance(memo, str) else None
        if m is None:
            continue
        entry = {"id": m.group(1).lower()}
        msgs = body.get("messages") or body.get("msg") or []
        for msg in msgs if isinstance(msgs, list) else []:
            msg = msg.get("value", msg) if isinstance(msg, dict) else {}
            desc, key = msg.get("description"), msg.get("pubkey")
            if isinstance(desc, dict) and isinstance(desc.get("moniker"), str):
                entry["moniker"] = desc["moniker"]
            raw = key.get("key") or key.get("value") if isinstance(key, dict) else None
            try:
                pub = base64.b64decode(raw, validate=True) if isinstance(raw, str) else b""
            except ValueError:
                pub = b""
            if len(pub) == 32:
                entry["validator"] = hashlib.sha256(pub).digest()[:20].hex().upper()
        out.append(entry)
    return out


def home_network(home: Path) -> dict[str, Any]:
    """What a node home says about the network: ``peers`` (``[id, host]`` from ``persistent_peers`` and
    ``seeds``; ``None`` when config.toml is absent or unreadable), ``external_host`` and ``gentx`` (see
    :func:`_gentx_ids`). Plain JSON-able data: it is kept with the node (``nodes.meta``)."""
    conf = _read_toml(home / "config" / "config.toml")
    p2p = conf.get("p2p") if conf is not None else None
    peers = None
    external = None
    if isinstance(p2p, dict):
        peers = _peer_entries(p2p.get("persistent_peers")) + _peer_entries(p2p.get("seeds"))
        external = _host(p2p.get("external_address"))
    gentx = _gentx_ids(_read_json(home / "config" / "genesis.json"))
    return {"peers": peers, "external_host": external, "gentx": gentx}
