"""What one Casper SSE event becomes: :class:`CasperEvent`, and the entity each event type is about.

A Casper node (1.x) sends externally tagged JSON events (``{"BlockAdded": {…}}``) on ``/events/main``,
``/events/deploys`` and ``/events/sigs`` (or everything on the legacy ``/events``), each with the node's own
u32 ``id:``. An event is stored once per (source, id, type, key) — the event level — and the entity it is
about once per its key — the entity level (the same block from three nodes is one block). ``key`` is the
entity's key, spelled as the casper-sidecar spells its ``event_key`` (docs/casper.md "Entities").
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

__all__ = ["CHANNELS", "ENTITY_TYPES", "TYPES", "CasperEvent", "channel_of"]

# Event types a 1.x node sends, in the order the sidecar numbers them; ApiVersion is the handshake (not stored).
ENTITY_TYPES: Final = ("BlockAdded", "DeployAccepted", "DeployExpired", "DeployProcessed", "Fault",
                       "FinalitySignature", "Step", "Shutdown")  # fmt: skip
TYPES: Final = ("ApiVersion", *ENTITY_TYPES)

# The node's SSE channels (paths under /events/) and which types each carries; "events" is the legacy root.
CHANNELS: Final[dict[str, tuple[str, ...]]] = {
    "main": ("BlockAdded", "DeployProcessed", "DeployExpired", "Fault", "Step", "Shutdown"),
    "deploys": ("DeployAccepted", "Shutdown"),
    "sigs": ("FinalitySignature", "Shutdown"),
    "events": ("BlockAdded", "DeployProcessed", "Fault", "FinalitySignature", "Shutdown"),
}


_CHANNEL_OF: Final = {t: name for name in ("sigs", "deploys", "main") for t in CHANNELS[name]}  # Shutdown: main


def channel_of(event_type: str) -> str:
    """The 1.x channel an event type is sent on (Shutdown: main)."""
    return _CHANNEL_OF.get(event_type, "main")


class CasperEvent(msgspec.Struct, frozen=True, gc=False):
    """One event as received from one node.

    ``source``: the node's address as a label (``host:port``, never credentials); ``channel``: the SSE path it
    came on (``main``, ``deploys``, ``sigs``, ``events``); ``event_id``: the node's SSE id (None for ApiVersion,
    or a node that sent none); ``type``: one of :data:`TYPES`; ``key``: the entity key; ``received_ns``: when
    the frame was received (epoch ns, this machine's clock); ``raw``: the ``data:`` JSON exactly as received
    (what REST "raw" answers and the SSE re-broadcast send); ``fields``: the parsed columns of its type
    (docs/casper.md "Fields").

    Not tracked by the cycle collector (``gc=False``: it holds no reference cycle — strings, bytes and a dict
    of plain values), so the tens of thousands in flight each second are not walked by every collection.
    """

    source: str
    channel: str
    event_id: int | None
    type: str
    key: str
    received_ns: int
    raw: bytes
    fields: dict[str, Any]
