"""The Casper family: what it registers (docs/casper.md).

Casper's data is not consensus messages between observers but a node's stream of finalized entities (blocks,
deploys, finality signatures, faults, era steps), so the family has no file formats and no derived tables of
the CometBFT kind: its events and entities live in its own tables (``store.py``), written by its followers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from bftscope.families.base import Family, RetainedTable
from bftscope.families.casper.model import ENTITY_TYPES

if TYPE_CHECKING:
    from fastapi import APIRouter

__all__ = ["FAMILY", "Casper"]


class Casper(Family):
    name = "casper"
    kinds = tuple(ENTITY_TYPES)
    identity_key = "name"
    identity_aliases = ("name",)

    def retention_tables(self) -> tuple[RetainedTable, ...]:
        return ()  # pruned by age and size by its own retention (retention.py), not by height

    def routers(self) -> Sequence[APIRouter]:
        from bftscope.families.casper.api.mounts import ROUTERS as REST  # seed and sidecar REST (docs/casper.md)

        return (*REST,)


FAMILY = Casper()
