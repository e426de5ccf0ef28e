"""Which Casper network a caller may read: one rule for every Casper route (REST, analytics, WebSocket, SSE).

A network of another user, of another chain, or none at all is a 404 exactly alike, so names cannot be probed;
an admin reads every network.
"""

from __future__ import annotations

import re

from bftscope.control import networks
from bftscope.control.networks import Network
from bftscope.control.records import User, valid_id
from bftscope.errors import NotFoundError
from bftscope.store.base import Store

__all__ = ["NAME", "casper_network"]

NAME = re.compile(networks.NAME_RULE)


def casper_network(store: Store, who: User, name: str, *, by_id: bool = False) -> Network:
    """The Casper network named ``name`` (with ``by_id``: or with that id) that ``who`` may read; else 404."""
    net = networks.network_named(store, name) if NAME.match(name) else None
    if net is None and by_id and valid_id(name):
        try:
            net = networks.get_network(store, name)
        except NotFoundError:
            net = None
    if net is None or net.chain != "casper" or (not who.is_admin and net.user_id != who.id):
        raise NotFoundError("Network not found")
    return net
