"""The Casper family: what it registers (docs/casper.md).

Casper's data is not consensus messages between observers but a node's stream of finalized entities (blocks,
deploys, finality signatures, faults, era steps), so the family has no file formats and no derived tables of
the CometBFT kind: its events and entities live in its own tables (``store.py``), written by its followers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bftscope.families.base import Family, RetainedTable
from bftscope.families.casper.model import ENTITY_TYPES
from bftscope.store.base import Store

__all__ = ["FAMILY", "Casper"]


class Casper(Family):
    name = "casper"
    kinds = tuple(ENTITY_TYPES)
    identity_key = "name"
    identity_aliases = ("name",)

    def retention_tables(self) -> tuple[RetainedTable, ...]:
        return ()  # pruned by age and size by its own retention (retention.py), not by height

    can_follow = True

    def follower(self, name: str, endpoints: Sequence[str], sink: Any, *, store: Store, run: str) -> Any:
        # A run followed before (a server restarted) resumes: each node channel from the last id it holds.
        from bftscope.families.casper.follow.follower import CasperFollower
        from bftscope.families.casper.follow.resume import last_event_ids

        run_id = store.get_or_create_run(run, self.name).id
        return CasperFollower(name, list(endpoints), sink, start_from=last_event_ids(store, run_id))

    def live_sink(self, store: Store, run: str) -> Any:
        from bftscope.families.casper.sink import CasperSink

        return CasperSink(store, run)

    def watch(self, name: str, urls: Sequence[str], **options: Any) -> None:
        """``bftscope watch NAME --casper URL …`` (the ``watch`` command hands ``--casper`` here)."""
        from bftscope.families.casper.follow.watch import watch_casper

        watch_casper(name, urls, **options)

    def register_cli(self, app: Any) -> None:
        from bftscope.families.casper.cli import register

        register(app)


FAMILY = Casper()
