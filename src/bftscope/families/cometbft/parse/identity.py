"""Who a node is, learned from what it recorded (never from file names alone).

Sources of identity, strongest first: ``P2P Node ID`` / ``Started node`` log lines and
``config/node_key.json`` (p2p id); ``This node is a validator`` lines, the WAL's own votes and
``config/priv_validator_key.json`` (validator address); ``config/config.toml`` (moniker);
``config/genesis.json`` (validator names, used for labels).
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Identity", "started_node_identity"]


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
