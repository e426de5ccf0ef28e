"""Publishing a Casper network's new entities (docs/casper.md "Publishing"): one batch message per store write.

:func:`attach_publisher` listens to a network's :class:`~bftscope.families.casper.sink.CasperSink`; after each
write it encodes the write's new entities (``Stored``, in ``out_id`` order) as one :class:`Batch` and publishes
it on the network's topic ``bftscope:casper:<network>``. One message per write, not per entity: at 20,000
events/s a message per entity costs more than the store write. The encoding happens on the sink's writer
thread (CPU only); the broadcaster hands the bytes to its event loop and never makes the writer wait.

Each :class:`Entity` carries what every kind of subscriber needs, computed once here rather than in every
instance: the WebSocket channels it goes to (``ws``) with the seed's REST JSON (``seed``), the SSE channel
(``channel``) with the node's JSON exactly as received (``raw``), and the fields the WebSocket filter message
selects on (``era``, ``proposer``, ``account``). ``seed`` and ``raw`` are embedded as JSON, not strings, and
kept as raw bytes when decoded (:class:`msgspec.Raw`), so no instance parses or re-encodes them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import msgspec

from bftscope.families.casper.seedjson import seed_json
from bftscope.families.casper.store import Stored
from bftscope.live.broadcast import Broadcaster

__all__ = ["Batch", "Entity", "attach_publisher", "decode_batch", "encode_batch", "make_batch", "topic_of",
           "ws_channels"]  # fmt: skip

log = logging.getLogger(__name__)

NULL = msgspec.Raw(b"null")


class Entity(msgspec.Struct, array_like=True):
    """One new entity as published. ``received_ns``: when the first node's event was received (epoch ns)."""

    out_id: int
    type: str
    key: str
    channel: str
    ws: list[str]
    era: int | None
    proposer: str | None
    account: str | None
    received_ns: int
    seed: msgspec.Raw
    raw: msgspec.Raw


class Batch(msgspec.Struct, array_like=True):
    """The new entities of one write of network ``network``, in ``out_id`` order."""

    network: str
    entities: list[Entity]


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Batch)


def topic_of(network: str) -> str:
    return f"bftscope:casper:{network}"


def ws_channels(type_: str, key: str, fields: dict[str, Any]) -> list[str]:
    """The seed's WebSocket channels an entity is published on (live-sources.md §C1 "WS + Redis channels")."""
    if type_ == "BlockAdded":
        return ["blocks", f"block:{key}"]
    if type_ == "DeployProcessed":
        return [f"deploy:{key}", f"accountDeploys:{fields.get('account')}"]
    return []


def _entity(s: Stored) -> Entity:
    f = s.fields
    seed = seed_json(s.type, s.key, f)
    era = f.get("era_id")
    return Entity(s.out_id, s.type, s.key, s.channel, ws_channels(s.type, s.key, f),
                  int(era) if era is not None else None, f.get("proposer"), f.get("account"), s.received_ns,
                  NULL if seed is None else msgspec.Raw(_encoder.encode(seed)),
                  msgspec.Raw(s.raw) if s.raw.strip() else NULL)  # fmt: skip


def make_batch(network: str, stored: Sequence[Stored]) -> Batch:
    return Batch(network, [_entity(s) for s in stored])


def encode_batch(network: str, stored: Sequence[Stored]) -> bytes:
    return _encoder.encode(make_batch(network, stored))


def decode_batch(data: bytes) -> Batch:
    """A published batch; :class:`msgspec.DecodeError` (or ValidationError) when it is not one."""
    return _decoder.decode(data)


def attach_publisher(sink: Any, broadcaster: Broadcaster, network: str) -> Callable[[], None]:
    """Publish each write of ``sink`` (a :class:`~bftscope.families.casper.sink.CasperSink`) on the topic of
    ``network``; returns the function that detaches it."""
    topic = topic_of(network)

    def publish(stored: list[Stored]) -> None:
        if stored:
            batch = make_batch(network, stored)
            broadcaster.publish(topic, _encoder.encode(batch), batch)  # this process's hub takes the object

    unlisten: Callable[[], None] = sink.listen(publish)
    return unlisten
