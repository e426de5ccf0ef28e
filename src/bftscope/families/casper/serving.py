"""What an API instance serves for Casper beside its routes: the :class:`~bftscope.families.casper.hub.Hubs`
of its networks (kept in ``ctx.services["casper"]``), and which network a subscription route names.

At start-up every Casper network of the store (and ``BFTSCOPE_CASPER_ROOT_NETWORK``) gets its hub, so an
instance's SSE replay buffer fills from the first published batch whether or not a client is connected yet;
other networks get theirs on first use. ``/v1/casper/{network}/…`` needs a caller who owns the network (or an
admin); the root routes serve the root network to anyone, as the seed did.
"""

from __future__ import annotations

from bftscope.api.context import ApiContext
from bftscope.control.networks import list_networks
from bftscope.control.records import User
from bftscope.errors import NotFoundError
from bftscope.families.casper.hub import Hub, Hubs
from bftscope.families.casper.owned import casper_network
from bftscope.live.broadcast import MemoryBroadcaster

__all__ = ["KEY", "hub_for", "hubs_of", "owned_network", "root_network", "start", "stop"]

KEY = "casper"


def hubs_of(ctx: ApiContext) -> Hubs:
    """The instance's hubs (made on first use when the app ran without its lifespan, e.g. under a test client)."""
    hubs: Hubs | None = ctx.services.get(KEY)
    if hubs is None:
        if ctx.broadcaster is None:
            ctx.broadcaster = MemoryBroadcaster()
        s = ctx.settings
        hubs = ctx.services[KEY] = Hubs(ctx.broadcaster, s.casper_sse_buffer, s.casper_subscriber_queue)
    return hubs


def hub_for(ctx: ApiContext, network: str) -> Hub:
    return hubs_of(ctx).get(network)


async def start(ctx: ApiContext) -> None:
    hubs = hubs_of(ctx)
    names = [n.name for n in list_networks(ctx.store) if n.chain == "casper"]
    if ctx.settings.casper_root_network:
        names.append(ctx.settings.casper_root_network)
    for name in names:
        hubs.get(name)


async def stop(ctx: ApiContext) -> None:
    hubs: Hubs | None = ctx.services.pop(KEY, None)
    if hubs is not None:
        await hubs.close()


def owned_network(ctx: ApiContext, who: User, name: str) -> str:
    """``name`` when it is a Casper network ``who`` may read; 404 otherwise, alike for another user's network,
    another chain's or none (as the REST routes: ``api/scope.py``)."""
    return casper_network(ctx.store, who, name).name


def root_network(ctx: ApiContext) -> str:
    """The network served at the root (``BFTSCOPE_CASPER_ROOT_NETWORK``); 404 when none is."""
    name = ctx.settings.casper_root_network
    if not name:
        raise NotFoundError("no Casper network is served at the root (BFTSCOPE_CASPER_ROOT_NETWORK)")
    return name
