"""The subscribers of one Casper network in this API instance, and the routing of published batches to them.

A :class:`Hub` subscribes once to its network's topic (whichever instance published) and routes each entity of
each batch by **exact** channel: a dict from a WebSocket channel (``blocks``, ``block:<hash>``,
``deploy:<hash>``, ``accountDeploys:<account>``) or an SSE path (``main``, ``deploys``, ``sigs``, ``events``) to
its clients. A client is only ever handed entities of its own channel — the seed handed every client every
message of the shared Redis connection.

Every client has a bounded queue (``queue_size`` entities). Routing never waits: a client whose queue is full
is cut alone (its consumer closes it: WebSocket 1013) and counted in :attr:`HubStats.cut`. The hub also keeps
the last ``ring_size`` entities (:attr:`Hub.ring`) for SSE ``start_from`` replay, so an instance can replay
what another one ingested, and counts the entities it never received (a gap in ``out_id``: Redis was down, or
its subscription fell behind) in :attr:`HubStats.missed`.

:class:`Hubs` holds the hubs of an instance, one per network, created on first use.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

import msgspec

from bftscope.families.casper.model import CHANNELS
from bftscope.families.casper.publish import Batch, Entity, decode_batch, topic_of
from bftscope.families.casper.subfilter import WsFilter
from bftscope.live.broadcast import Broadcaster

__all__ = ["SSE_PATHS", "Client", "Hub", "HubStats", "Hubs", "sse_paths"]

log = logging.getLogger(__name__)

SSE_PATHS = ("main", "deploys", "sigs", "events")


def sse_paths(e: Entity) -> tuple[str, ...]:
    """The outbound SSE paths an entity is sent on: its own channel, and the legacy ``/events`` for its types."""
    return (e.channel, "events") if e.type in CHANNELS["events"] else (e.channel,)


class Client:
    """One subscriber: a channel (WebSocket) or an SSE path, its filter and its bounded queue."""

    def __init__(self, channel: str, queue_size: int, flt: WsFilter | None = None) -> None:
        self.channel = channel
        self.filter = flt or WsFilter()
        self.queue_size = queue_size
        self.items: collections.deque[Entity] = collections.deque()
        self.ready = asyncio.Event()
        self.cut = False  # fell queue_size entities behind
        self.closed = False  # cut, or the hub closed
        self.sent = 0

    def offer(self, e: Entity) -> bool:
        """Queue ``e`` if the filter keeps it; False when the queue is full (the client must be cut)."""
        if not self.filter.keep(e):
            return True
        if len(self.items) >= self.queue_size:
            return False
        self.items.append(e)
        self.ready.set()
        return True

    def close(self, cut: bool = False) -> None:
        self.cut = self.cut or cut
        self.closed = True
        self.items.clear()
        self.ready.set()

    async def take(self) -> list[Entity] | None:
        """Everything queued (waiting for at least one); None once the client is closed."""
        while not self.items:
            if self.closed:
                return None
            self.ready.clear()
            await self.ready.wait()
        if self.closed:
            return None
        out = list(self.items)
        self.items.clear()
        return out


@dataclass
class HubStats:
    batches: int = 0
    entities: int = 0
    missed: int = 0  # entities of out_id gaps: never received by this instance
    repeated: int = 0  # entities at or below the last out_id seen (ignored)
    bad_batches: int = 0
    cut: int = 0
    ws_clients: int = 0
    sse_clients: int = 0


@dataclass
class Hub:
    """The subscribers of network ``network`` in this instance."""

    network: str
    broadcaster: Broadcaster
    ring_size: int = 5000
    queue_size: int = 10_000
    stats: HubStats = field(default_factory=HubStats)

    def __post_init__(self) -> None:
        self.ring: collections.deque[Entity] = collections.deque(maxlen=self.ring_size or None)
        self.last_out: int | None = None
        self._ws: dict[str, list[Client]] = {}
        self._sse: dict[str, list[Client]] = {}
        self._sub = self.broadcaster.subscribe(topic_of(self.network), max_batches=4096)
        self._task = asyncio.create_task(self._consume(), name=f"casper-hub:{self.network}")

    # --- clients ---------------------------------------------------------------------------------------
    def add_ws(self, channel: str, flt: WsFilter | None = None) -> Client:
        client = Client(channel, self.queue_size, flt)
        self._ws.setdefault(channel, []).append(client)
        self.stats.ws_clients += 1
        return client

    def add_sse(self, path: str, start_from: int | None) -> tuple[Client, list[Entity]]:
        """A new SSE client of ``path`` and the ring's entities of that path with ``out_id >= start_from`` (none
        for None). Registered and read in one step on the loop, so no batch falls between the two."""
        client = Client(path, self.queue_size)
        self._sse.setdefault(path, []).append(client)
        self.stats.sse_clients += 1
        replay = [] if start_from is None else [e for e in self.ring if e.out_id >= start_from and path in sse_paths(e)]
        return client, replay

    def remove(self, client: Client) -> None:
        for table, count in ((self._ws, "ws_clients"), (self._sse, "sse_clients")):
            clients = table.get(client.channel)
            if clients is not None and client in clients:
                clients.remove(client)
                setattr(self.stats, count, getattr(self.stats, count) - 1)
                if not clients:
                    del table[client.channel]
        client.close()

    def ring_first(self) -> int | None:
        return self.ring[0].out_id if self.ring else None

    # --- routing ---------------------------------------------------------------------------------------
    async def _consume(self) -> None:
        async for msg in self._sub:
            if isinstance(msg.value, Batch):  # published in this process: already an object
                self.route(msg.value.entities)
                continue
            try:
                batch = decode_batch(msg.data)
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                self.stats.bad_batches += 1
                log.warning("casper network %s: a published batch could not be read (%s)", self.network, exc)
                continue
            self.route(batch.entities)

    def route(self, entities: Iterable[Entity]) -> None:
        self.stats.batches += 1
        for e in entities:
            if self.last_out is not None:
                if e.out_id <= self.last_out:
                    self.stats.repeated += 1
                    continue
                self.stats.missed += e.out_id - self.last_out - 1
            self.last_out = e.out_id
            self.stats.entities += 1
            if self.ring_size:
                self.ring.append(e)
            for ch in e.ws:
                self._offer(self._ws.get(ch), e)
            for path in sse_paths(e):
                self._offer(self._sse.get(path), e)

    def _offer(self, clients: list[Client] | None, e: Entity) -> None:
        if not clients:
            return
        for client in list(clients):
            if not client.offer(e):
                self.remove(client)
                client.close(cut=True)
                self.stats.cut += 1

    async def close(self) -> None:
        self.broadcaster.unsubscribe(self._sub)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        for table in (self._ws, self._sse):
            for clients in table.values():
                for client in clients:
                    client.close()
            table.clear()


@dataclass
class Hubs:
    """The hubs of this instance, one per Casper network, created on first use (on the event loop)."""

    broadcaster: Broadcaster
    ring_size: int = 5000
    queue_size: int = 10_000
    hubs: dict[str, Hub] = field(default_factory=dict)

    def get(self, network: str) -> Hub:
        hub = self.hubs.get(network)
        if hub is None:
            hub = self.hubs[network] = Hub(network, self.broadcaster, self.ring_size, self.queue_size)
        return hub

    async def close(self) -> None:
        for hub in self.hubs.values():
            await hub.close()
        self.hubs.clear()
