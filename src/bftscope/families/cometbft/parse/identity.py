"""Who a node is, learned from what it recorded (never from file names alone).

Sources of identity, strongest first: ``P2P Node ID`` / ``Started node`` log lines and
``config/node_key.json`` (p2p id); ``This node is a validator`` lines, the WAL's own votes and
``config/priv_validator_key.json`` (validator address); ``config/config.toml`` (moniker);
``config/genesis.json`` (validator names, used for labels). The log lines are found by
:func:`scan_identity`, whatever the log's framing (JSON or text).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import BinaryIO

from bftscope.families.cometbft.parse.logline import LogLine
from bftscope.ingest.lines import read_lines
from bftscope.ingest.parsereport import ParseReport

__all__ = ["Identity", "node_info_fields", "scan_identity", "started_node_identity"]


@dataclass
class Identity:
    p2p_id: str | None = None  # lower-case hex node id
    validator: str | None = None  # upper-case hex validator address
    moniker: str | None = None
    chain_id: str | None = None
    evidence: list[str] = field(default_factory=list)  # where each fact came from, for the summary

    def merge(self, other: Identity) -> None:
        """Fill unknown fields from ``other``; conflicting facts are reported, first one kept."""
        for name in ("p2p_id", "validator", "moniker", "chain_id"):
            mine, theirs = getattr(self, name), getattr(other, name)
            if mine is None and theirs is not None:
                setattr(self, name, theirs)
        self.evidence.extend(e for e in other.evidence if e not in self.evidence)

    def conflicts(self, other: Identity) -> list[str]:
        out = []
        for name in ("p2p_id", "validator"):
            mine, theirs = getattr(self, name), getattr(other, name)
            if mine is not None and theirs is not None and mine != theirs:
                out.append(f"{name} {mine} vs {theirs}")
        return out

    @property
    def known(self) -> bool:
        return self.p2p_id is not None or self.validator is not None


def started_node_identity(info: dict[str, str]) -> Identity:
    """Identity from the fields of a ``Started node`` line's ``nodeInfo``."""
    return Identity(
        p2p_id=info.get("p2p_id"),
        moniker=info.get("moniker"),
        chain_id=info.get("chain_id"),
        evidence=["log line 'Started node'"],
    )


def node_info_fields(text: str) -> dict[str, str]:
    """Facts from the ``nodeInfo`` of a ``Started node`` line (``DefaultNodeID:…``, ``Moniker:…``)."""
    out: dict[str, str] = {}
    for m in _NODE_INFO_KEY.finditer(text):
        out.setdefault(_NODE_INFO_NAMES[m.group(1)], m.group(2))
    if "p2p_id" in out:
        out["p2p_id"] = out["p2p_id"].lower()
    return out


_NODE_INFO_KEY = re.compile(r"(?<![A-Za-z])(DefaultNodeID|Moniker|Network|Version):([^\s{}]+)")
_NODE_INFO_NAMES = {"DefaultNodeID": "p2p_id", "Moniker": "moniker", "Network": "chain_id", "Version": "version"}


_IDENTITY_MSGS = (b"P2P Node ID", b"This node is a validator", b"Started node")


def scan_identity(stream: BinaryIO, limit_bytes: int, decode: Callable[[bytes], LogLine | None]) -> Identity:
    """Identity facts from the identity lines in the first ``limit_bytes`` of a log, whatever its framing.

    ``decode`` turns one raw line into a :class:`LogLine` (``None`` if it cannot). Identity lines come
    first in a node's log, so small chunks are read and the scan stops once p2p id, address and moniker
    (the label people know the node by) are known.
    """
    ident = Identity()
    report = ParseReport()
    for _, lines in read_lines(stream, report, end=limit_bytes, chunk_bytes=256 * 1024):
        for raw in lines:
            if not any(m in raw for m in _IDENTITY_MSGS):
                continue
            line = decode(raw)
            if line is None:
                continue
            if line.msg == "P2P Node ID" and isinstance(line.ID, str) and ident.p2p_id is None:
                ident.p2p_id = line.ID.lower()
                ident.evidence.append("log line 'P2P Node ID'")
            elif line.msg == "This node is a validator" and isinstance(line.addr, str) and ident.validator is None:
                ident.validator = line.addr.upper()
                ident.evidence.append("log line 'This node is a validator'")
            elif line.msg == "Started node" and isinstance(line.nodeInfo, str):
                ident.merge(started_node_identity(node_info_fields(line.nodeInfo)))
            if ident.p2p_id and ident.validator and ident.moniker:  # "Started node" (moniker) comes last
                return ident
    return ident
