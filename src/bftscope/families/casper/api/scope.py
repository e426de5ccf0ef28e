"""Which Casper network a request reads, and whether the caller may: the two mounts' dependencies.

``/v1/casper/{network}/…`` names a followed network (``/v1/networks``, chain ``casper``); the caller needs a
token (any caller in ``local`` auth mode) and must own the network or be an admin. A network of another
user, of another chain, or none at all answers 404 exactly alike, so names cannot be probed.

The root mount (``/block/…``, ``/blocks``, … for the seed's clients) reads the one network named by
``BFTSCOPE_CASPER_ROOT_NETWORK``, read-only and without a token, as the seed did. It is off by default: then
its routes answer 404 as unknown paths do. Before the network exists or has stored anything, it answers as an
empty store (no blocks, nothing found).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Path

from bftscope.api.deps import Caller, Ctx
from bftscope.control import networks
from bftscope.errors import InputError, NotFoundError
from bftscope.families.casper.owned import NAME, casper_network
from bftscope.store.base import Store

__all__ = ["CasperScope", "root_scope", "v1_scope"]



@dataclass(frozen=True)
class CasperScope:
    """The store and run a request reads (``run_id`` None: the network has stored nothing yet)."""

    store: Store
    run_id: int | None


def v1_scope(
    network: Annotated[str, Path(description="a followed Casper network's name",
                                 json_schema_extra={"pattern": networks.NAME_RULE})],
    c: Ctx,
    who: Caller,
) -> CasperScope:
    if NAME.match(network) is None:
        raise InputError("network: 1–63 letters, digits, '.', '_' or '-', starting with a letter or digit")
    return CasperScope(c.store, networks.run_id_of(c.store, casper_network(c.store, who, network)))


def root_scope(c: Ctx) -> CasperScope:
    name = c.settings.casper_root_network
    if name is None:
        raise NotFoundError("Not found")
    net = networks.network_named(c.store, name)
    return CasperScope(c.store, networks.run_id_of(c.store, net) if net is not None and net.chain == "casper" else None)
