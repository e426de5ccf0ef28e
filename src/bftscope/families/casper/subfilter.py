"""The WebSocket filter message: ``{"filter": {"types": [...], "era": N, "proposer": "...", "account": "..."}}``.

A subscriber of a seed route (``/blocks`` …) may narrow what it receives. Every key is optional; an empty
filter (``{"filter": {}}``) clears it. ``types`` are entity types (``BlockAdded``, ``DeployProcessed``);
``era`` and ``proposer`` select blocks, ``account`` deploys: an entity that does not carry a field a filter
names does not match it (``{"era": 5}`` on ``/accountDeploys/…`` lets nothing through — deploys have no era).
A malformed message is answered with an error frame and changes nothing (:class:`InputError`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson

from bftscope.errors import InputError
from bftscope.families.casper.model import ENTITY_TYPES
from bftscope.families.casper.publish import Entity

__all__ = ["MAX_MESSAGE", "WsFilter", "parse_message"]

MAX_MESSAGE = 4096
_HEX = re.compile(r"^[0-9A-Fa-f]{2,200}$")
_KEYS = ("types", "era", "proposer", "account")


@dataclass(frozen=True)
class WsFilter:
    types: frozenset[str] = frozenset()
    era: int | None = None
    proposer: str | None = None
    account: str | None = None

    def keep(self, e: Entity) -> bool:
        if self.types and e.type not in self.types:
            return False
        if self.era is not None and e.era != self.era:
            return False
        if self.proposer is not None and (e.proposer or "").lower() != self.proposer:
            return False
        return self.account is None or (e.account or "").lower() == self.account

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"types": sorted(self.types)} if self.types else {}
        for name in ("era", "proposer", "account"):
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        return out


def _hex(value: Any, name: str) -> str:
    if not isinstance(value, str) or not _HEX.match(value):
        raise InputError(f"filter.{name}: a hex public key")
    return value.lower()


def parse_message(text: str | bytes) -> WsFilter:
    """A client's message → its filter; :class:`InputError` saying what is wrong."""
    if len(text) > MAX_MESSAGE:
        raise InputError(f"message longer than {MAX_MESSAGE} bytes")
    try:
        msg = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise InputError('not JSON: send {"filter": {...}}') from None
    if not isinstance(msg, dict) or set(msg) != {"filter"} or not isinstance(msg["filter"], dict):
        raise InputError('expected {"filter": {...}} with keys among ' + ", ".join(_KEYS))
    f = msg["filter"]
    if unknown := sorted(set(f) - set(_KEYS)):
        raise InputError(f"filter: unknown key {unknown[0][:64]!r} (known: {', '.join(_KEYS)})")
    types: frozenset[str] = frozenset()
    if "types" in f:
        if not isinstance(f["types"], list) or not all(isinstance(t, str) for t in f["types"]):
            raise InputError("filter.types: a list of entity types")
        if bad := sorted(set(f["types"]) - set(ENTITY_TYPES)):
            raise InputError(f"filter.types: unknown type {bad[0][:64]!r}")
        types = frozenset(f["types"])
    era = f.get("era")
    if era is not None and (isinstance(era, bool) or not isinstance(era, int) or not 0 <= era < 2**63):
        raise InputError("filter.era: a non-negative whole number")
    proposer = _hex(f["proposer"], "proposer") if f.get("proposer") is not None else None
    account = _hex(f["account"], "account") if f.get("account") is not None else None
    return WsFilter(types, era, proposer, account)
