"""The Casper family: what it registers (docs/casper.md).

Casper's data is not consensus messages between observers but a node's stream of finalized entities (blocks,
deploys, finality signatures, faults, era steps), so the family has no file formats and no derived tables of
the CometBFT kind: its events and entities live in its own tables (``store.py``), written by its followers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter

from bftscope.families.base import Family, RetainedTable
from bftscope.families.casper.model import ENTITY_TYPES

__all__ = ["FAMILY", "Casper"]


class Casper(Family):
    name = "casper"
    kinds = tuple(ENTITY_TYPES)
    identity_key = "name"
    identity_aliases = ("name",)

    def retention_tables(self) -> tuple[RetainedTable, ...]:
        return ()  # pruned by age and size by its own retention (retention.py), not by height

    def routers(self) -> Sequence[APIRouter]:
        from bftscope.families.casper.api import ROUTERS

        return ROUTERS

    async def start_serving(self, ctx: Any) -> None:
        from bftscope.families.casper import serving

        await serving.start(ctx)

    async def stop_serving(self, ctx: Any) -> None:
        from bftscope.families.casper import serving

        await serving.stop(ctx)


FAMILY = Casper()
