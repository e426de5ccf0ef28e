"""The Casper family: what it registers (docs/casper.md).

Casper's data is not consensus messages between observers but a node's stream of finalized entities (blocks,
deploys, finality signatures, faults, era steps), so the family has no file formats and no derived tables of
the CometBFT kind: its events and entities live in its own tables (``store.py``), written by its followers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from bftscope.families.base import Family, RetainedTable
from bftscope.families.casper.model import ENTITY_TYPES

if TYPE_CHECKING:
    from fastapi import APIRouter

    from bftscope.config import Settings
    from bftscope.store.base import Store

__all__ = ["FAMILY", "Casper"]

_TABLES = (("casper_event_log", "received_ns"), ("casper_payloads", "received_ns"), ("casper_blocks", "received_ns"),
           ("casper_block_deploys", None), ("casper_era_weights", None),
           ("casper_deploys_accepted", "received_ns"), ("casper_deploys_processed", "received_ns"),
           ("casper_deploys_expired", "received_ns"), ("casper_faults", "received_ns"),
           ("casper_signatures", "received_ns"), ("casper_steps", "received_ns"),
           ("casper_shutdowns", "received_ns"))  # fmt: skip


class Casper(Family):
    name = "casper"
    kinds = tuple(ENTITY_TYPES)
    identity_key = "name"
    identity_aliases = ("name",)

    def retention_tables(self) -> tuple[RetainedTable, ...]:
        # Pruned by age and size by its own retention (prune_run, retention.py), never by height: declared
        # so that a live run's size (/metrics) counts its rows.
        return tuple(RetainedTable(t, "raw", height=None, ts=ts) for t, ts in _TABLES)

    live_only = True  # its runs are followed networks: it reads no files

    def run_counts(self, store: Store, run_id: int) -> dict[str, Any]:
        # Its events are the Casper store's (casper_event_log: one row per event kept, every node's), its
        # entities one payload each; it derives nothing ahead (the analytics are computed on read): never stale.
        (events,), = store.query("SELECT count(*) FROM casper_event_log WHERE run_id = :run", {"run": run_id})
        (entities,), = store.query("SELECT count(*) FROM casper_payloads WHERE run_id = :run", {"run": run_id})
        return {"events": int(events), "entities": int(entities), "derived": "on read"}

    def prune_run(self, store: Store, run_id: int, now: float, settings: Settings) -> dict[str, int] | None:
        from bftscope.families.casper.retention import prune

        return prune(store, run_id, now_ns=int(now * 1e9), retain_days=settings.casper_retain_days,
                     retain_bytes=settings.casper_retain_bytes)  # fmt: skip

    def routers(self) -> Sequence[APIRouter]:
        from bftscope.families.casper import sse_routes, ws_routes
        from bftscope.families.casper.analytics_routes import router as analytics
        from bftscope.families.casper.api.mounts import ROUTERS as REST  # seed and sidecar REST (docs/casper.md)

        return (analytics, *REST, ws_routes.router, sse_routes.router)  # subscriptions: docs/casper.md

    def publish_live(self, sink: Any, broadcaster: Any, network: str) -> Any:
        """Each write of the network's :class:`~bftscope.families.casper.sink.CasperSink`, published as one batch
        (docs/casper.md "Publishing")."""
        if broadcaster is None or not hasattr(sink, "listen"):
            return None
        from bftscope.families.casper.publish import attach_publisher

        return attach_publisher(sink, broadcaster, network)

    async def start_serving(self, ctx: Any) -> None:
        from bftscope.families.casper import serving

        await serving.start(ctx)

    async def stop_serving(self, ctx: Any) -> None:
        from bftscope.families.casper import serving

        await serving.stop(ctx)

    can_follow = True

    def follower(self, name: str, endpoints: Sequence[str], sink: Any, *, store: Store, run: str,
                 settings: Settings | None = None) -> Any:
        # A run followed before (a server restarted) resumes: each node channel from the last id it holds. The
        # nodes are read and decoded in a child process unless the settings say otherwise (follow/process.py).
        from bftscope.families.casper.follow.follower import CasperFollower
        from bftscope.families.casper.follow.process import ProcessFollower
        from bftscope.families.casper.follow.resume import last_event_ids

        run_id = store.get_or_create_run(run, self.name).id
        start_from = last_event_ids(store, run_id)
        if settings is None or settings.casper_follower_process:
            return ProcessFollower(name, list(endpoints), sink, start_from=start_from)
        return CasperFollower(name, list(endpoints), sink, start_from=start_from)

    def check_endpoint(self, url: str) -> str:
        from bftscope.families.casper.follow.nodeurl import parse_node_url

        parse_node_url(url)  # an http(s) node SSE server, its root or one of its /events paths
        return url

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
