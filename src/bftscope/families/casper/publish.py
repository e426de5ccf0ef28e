"""Publishing a Casper network's new entities (docs/casper.md "Publishing"): one batch message per store write.

:func:`attach_publisher` listens to a network's :class:`~bftscope.families.casper.sink.CasperSink`; after each
write it encodes the write's new entities (``Stored``, in ``out_id`` order) as one :class:`Batch` and publishes
it on the network's topic ``bftscope:casper:<network>``. One message per write, not per entity: at 20,000
events/s a message per entity costs more than the store write. The writer thread only queues a write's
entities; a :class:`Publisher` thread per network builds and encodes the batch, and the broadcaster hands the
bytes to its event loop — nothing makes the writer wait.

Each :class:`Entity` carries what every kind of subscriber needs, computed once here rather than in every
instance: the WebSocket channels it goes to (``ws``) with the seed's REST JSON (``seed``, built as the REST
routes build it: ``api/shapes.py``), the SSE channel (``channel``) with the node's JSON exactly as received
(``raw``), and the fields the WebSocket filter message selects on (``era``, ``proposer``, ``account``).
``seed`` and ``raw`` are embedded as JSON, not strings, and kept as raw bytes when decoded
(:class:`msgspec.Raw`), so no instance parses or re-encodes them.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Sequence
from typing import Any

import msgspec

from bftscope.families.casper.api.shapes import block_of, processed_deploy_of
from bftscope.families.casper.store import Stored
from bftscope.live.broadcast import Broadcaster

__all__ = ["Batch", "Entity", "Publisher", "attach_publisher", "decode_batch", "encode_batch", "make_batch",
           "seed_json", "topic_of", "ws_channels"]  # fmt: skip

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


def seed_json(type_: str, fields: dict[str, Any]) -> dict[str, Any] | None:
    """The seed's REST JSON of a BlockAdded or DeployProcessed (``api/shapes.py``, as REST answers); None for the
    types the seed never had."""
    if type_ == "BlockAdded":
        return block_of(fields)
    if type_ == "DeployProcessed":
        return processed_deploy_of(fields)
    return None


def _entity(s: Stored) -> Entity:
    f = s.fields
    seed = seed_json(s.type, f)
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


class Publisher:
    """Publishes the writes of one network from its own thread: the sink's writer thread only queues each write's
    entities (the writer is the pipeline's bottleneck, and most of its store work runs without the GIL, so
    building and encoding batches beside it rather than in it lets the two overlap). At most ``max_pending``
    writes wait; more are counted in ``dropped`` (and logged) rather than hold the writer back. The thread starts
    with the first write and ends after ``idle_s`` without one, so a publisher whose sink is gone (a follower
    restarted) leaves no thread behind."""

    def __init__(self, broadcaster: Broadcaster, network: str, max_pending: int = 1024, idle_s: float = 30.0,
                 *, inline: bool = False) -> None:  # fmt: skip
        self.broadcaster, self.network, self.topic = broadcaster, network, topic_of(network)
        self.idle_s = idle_s
        self.inline = inline  # publish in the caller's thread (a journaled sink's writer waits on no store)
        self.published = self.dropped = 0
        self._queue: queue.Queue[list[Stored] | None] = queue.Queue(maxsize=max_pending)
        self._lock = threading.Lock()
        self._running = False

    def __call__(self, stored: list[Stored]) -> None:
        if not stored:
            return
        if self.inline:
            self._publish(stored)
            return
        try:
            self._queue.put_nowait(stored)
        except queue.Full:
            self.dropped += len(stored)
            log.warning("casper network %s: the publisher is %d writes behind; %d entities not published",
                        self.network, self._queue.maxsize, len(stored))  # fmt: skip
            return
        with self._lock:
            if not self._running:
                self._running = True
                threading.Thread(target=self._run, name=f"casper-publish:{self.network}", daemon=True).start()

    def _run(self) -> None:
        while True:
            try:
                stored = self._queue.get(timeout=self.idle_s)
            except queue.Empty:
                with self._lock:  # a write queued meanwhile is seen here, or starts a new thread after this one
                    if self._queue.empty():
                        self._running = False
                        return
                continue
            if stored is None:
                with self._lock:
                    self._running = False
                return
            self._publish(stored)

    def _publish(self, stored: list[Stored]) -> None:
        try:
            batch = make_batch(self.network, stored)
            self.broadcaster.publish(self.topic, _encoder.encode(batch), batch)  # this process's hub: the object
            self.published += len(stored)
        except Exception:  # a bad entity must not end publishing
            self.dropped += len(stored)
            log.exception("casper network %s: a batch could not be published", self.network)

    def close(self) -> None:
        """Publish what is queued, then end the thread."""
        with self._lock:
            running = self._running
        if running:
            self._queue.put(None)


def attach_publisher(sink: Any, broadcaster: Broadcaster, network: str) -> Callable[[], None]:
    """Publish each write of ``sink`` (a :class:`~bftscope.families.casper.sink.CasperSink`) on the topic of
    ``network`` (through a :class:`Publisher`); returns the function that detaches it."""
    publisher = Publisher(broadcaster, network, inline=bool(getattr(sink, "journaled", False)))
    unlisten: Callable[[], None] = sink.listen(publisher)

    def detach() -> None:
        unlisten()
        publisher.close()

    return detach
