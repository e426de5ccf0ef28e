"""What a chain family provides: the :class:`ChainFamily` protocol, and :class:`Family`, a base with neutral defaults.

A family is everything bftscope knows about one kind of chain: the event kinds it writes, the file
formats it reads (each one detects, identifies and parses a file, :class:`~bftscope.ingest.source.FileFormat`),
its live sources, how it builds its derived tables from a run's events, the metrics it rolls up after
each ingest, its API routers and CLI commands, how it names its events on ``/events``, and how it
tells one node from another (a family-defined key with aliases). The generic layers ask the registry
(:mod:`bftscope.families.registry`) for a family and call only what is declared here, so adding a chain
is adding a package, not editing the layers.

Node identity is the family's: a format's ``identity`` returns the family's own identity object, and
only the family turns it into a label and a node of the store (:meth:`ChainFamily.resolve_node`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

if TYPE_CHECKING:
    import pyarrow as pa
    from fastapi import APIRouter

    from bftscope.analytics.summary import NodeCounts
    from bftscope.config import Settings
    from bftscope.ingest.source import FileFormat, NodeIdentity
    from bftscope.store.base import NodeRecord, Store
    from bftscope.store.eventquery import EventFilter

__all__ = ["ChainFamily", "EventRenderer", "Family", "Metric", "NamedNode", "RetainedTable"]

# A metric: (store, run id, time window) → JSON-able answer. The window is the family's own type.
Metric = Callable[["Store", int, Any], Any]


class EventRenderer(Protocol):
    """How a family's events are shown on ``/events``: a page of rows already in the API's JSON."""

    def lookup_tables(self, store: Store, run_id: int) -> dict[str, pa.Table]:
        """Facts of the whole run a page needs (kept by the server with the run's cached facts)."""
        ...

    def fetch_page(
        self,
        store: Store,
        run_id: int,
        flt: EventFilter,
        *,
        limit: int,
        after: tuple[int, int] | None,
        before: tuple[int, int] | None,
        offset: int,
        span: tuple[int, int, int],
        tables: dict[str, pa.Table] | None = None,
    ) -> list[tuple[int, int, str]]:
        """``(ts, id, JSON)`` of the entries of the page, oldest first."""
        ...


@runtime_checkable
class ChainFamily(Protocol):
    name: str  # the chain name stored on each run (``runs.chain``)
    kinds: Sequence[str]  # the ``kind`` values its events take
    formats: Sequence[FileFormat]  # tried in this order when sniffing a file
    live_sources: Sequence[Any]  # the live sources it offers (none yet for CometBFT)
    identity_key: str  # the alias that identifies a node best ("p2p_id", a public key, a peer id …)
    identity_aliases: tuple[str, ...]  # every alias a node is known by, strongest first
    derived_version: int  # raise it when what derive/rollups compute changes: older runs rebuild
    whole_run: Any  # the window (of the family's metrics) that covers the whole run: its answers are stored

    def is_node_home(self, path: Path) -> bool:
        """A directory holding one node's files (its identity is read from it)."""
        ...

    def file_order(self, path: Path) -> Any:
        """Sort key of a found file (rotated files before their head file); None for 'by path'."""
        ...

    def not_a_log(self, name: str) -> str | None:
        """Why a file the formats did not recognise is not an input, known by its name (else None)."""
        ...

    def new_identity(self) -> NodeIdentity:
        """An identity that knows nothing yet (a file whose identity scan failed)."""
        ...

    def home_identity(self, home: Path) -> NodeIdentity: ...

    def home_names(self, home: Path) -> dict[str, str]:
        """Names of nodes that a node home declares (labels), keyed by an identity alias."""
        ...

    def node_label(self, ident: NodeIdentity, names: dict[str, str], home: Path | None, path: Path) -> str: ...

    def aliases(self, node: NodeRecord) -> list[str]:
        """What else a node may be called by (beside its label) when a client names it."""
        ...

    def resolve_node(self, store: Store, run_id: int, ident: NodeIdentity, label: str, home: Path | None) -> NodeRecord:
        """The run's node for this identity (created or merged by its aliases), recording where it came from."""
        ...

    def derive(self, store: Store, run_id: int) -> dict[str, int]:
        """Rebuild the run's derived tables; returns row counts."""
        ...

    def derive_incremental(self, store: Store, run_id: int, from_height: int) -> dict[str, int]:
        """Bring the derived tables up to date after new events of heights ``>= from_height`` only (and events
        without a height), with the rows a full :meth:`derive` would give; returns row counts."""
        ...

    def retention_tables(self) -> Sequence[RetainedTable]:
        """The run tables retention prunes by age (:mod:`bftscope.live.retention`): raw events and what is
        derived from them, kept for the raw window, and per-height summaries kept for the longer one."""
        ...

    live_only: bool  # every run of the family is a followed network (it reads no files): retention prunes each

    def prune_run(self, store: Store, run_id: int, now: float, settings: Settings) -> dict[str, int] | None:
        """Prune a live run by the family's own rules at time ``now`` (Unix seconds) and return the rows removed
        per table; None: the run is pruned by height, from :meth:`retention_tables` (the neutral path)."""
        ...

    def run_counts(self, store: Store, run_id: int) -> dict[str, Any]:
        """What ``bftscope runs`` shows of a run beyond the neutral counts, or instead of them: ``events``,
        ``derived`` (``current``/``stale``, or a word of the family's) and counts of its own (Casper:
        ``entities``); ``{}`` keeps the neutral ones."""
        ...

    def keep_before_prune(self, store: Store, run_id: int, below_height: int) -> dict[str, int]:
        """Write what the run keeps of the heights below ``below_height`` once their raw events are pruned (its
        "summary" tables: missed votes, per-height summaries), from those events; called by retention just
        before it removes them. Idempotent: a second call writes the same rows again, never more. Returns
        rows written per table."""
        ...

    def provenance(self, store: Store, run_id: int) -> dict[int, dict[str, Any]]:
        """Per node: where its identity came from and conflicts between sources (for the summary)."""
        ...

    def node_identities(self, store: Store, run_id: int) -> list[dict[str, Any]]:
        """Per node: its identity and where it came from (an ingest's result)."""
        ...

    def rollups(self) -> Mapping[str, Metric]:
        """The metrics stored after each ingest (name → metric), in the order they are stored."""
        ...

    def refresh_rollups(self, store: Store, run_id: int) -> int:
        """Store every rollup of the run through the engine (:func:`bftscope.analytics.rollups.refresh`)."""
        ...

    def encode(self, name: str, value: Any) -> bytes:
        """A metric's answer as the JSON the API sends."""
        ...

    def summary_node(self, node: NodeRecord, counts: NodeCounts | None, provenance: dict[str, Any]) -> dict[str, Any]:
        """One node of ``bftscope summary`` (see :mod:`bftscope.analytics.summary`)."""
        ...

    def routers(self) -> Sequence[APIRouter]:
        """Its API routers, mounted by the app."""
        ...

    def register_cli(self, app: Any) -> None:
        """Add its commands to the command line (a ``typer.Typer``)."""
        ...

    async def start_serving(self, ctx: Any) -> None:
        """Start what it serves beside its routes (the API's lifespan; ``ctx``: the app's ``ApiContext``)."""
        ...

    def publish_live(self, sink: Any, broadcaster: Any, network: str) -> Any:
        """Have a followed network's live sink publish what it stores through ``broadcaster`` (a
        :class:`~bftscope.live.broadcast.Broadcaster`; None: nothing); returns a detach function, or None."""
        ...

    async def stop_serving(self, ctx: Any) -> None:
        """Stop what :meth:`start_serving` started."""
        ...

    def events(self) -> EventRenderer: ...

    can_follow: bool  # offers :meth:`follower` (a live network can be followed in ``bftscope serve``)

    def follower(self, name: str, endpoints: Sequence[str], sink: Any, *, store: Store, run: str,
                 settings: Settings | None = None) -> Any:
        """A follower of the live network ``name`` over RPC ``endpoints`` writing through ``sink`` (an
        :class:`~bftscope.ingest.live.EventSink` on ``run`` of ``store``): ``run()``, ``stop()``, ``status()``,
        ``listen(callback)`` — docs/live.md "Follower". ``settings``: the server's, for the family's own options
        (None: the defaults)."""
        ...

    def vote_outcomes(self, store: Store, run_id: int, from_height: int, to_height: int) -> list[dict[str, Any]]:
        """Per height, round, validator and vote type of the heights given: ``{"height", "round", "validator",
        "type", "status"}`` (docs/live.md "Missed votes"), for the vote alerts; [] where the family has none."""
        ...

    def check_endpoint(self, url: str) -> str:
        """``url`` when a network of this family may follow it, else an :class:`~bftscope.errors.InputError`
        saying why (shown redacted)."""
        ...

    def live_sink(self, store: Store, run: str) -> Any:
        """The sink a followed network's events are written through (run ``run`` of ``store``): an
        :class:`~bftscope.ingest.live.EventSink`; the server also calls, when the sink has them, ``update()``
        every few seconds, and ``wait()``, ``update()`` and ``close()`` once its follower has stopped."""
        ...


@dataclass(frozen=True)
class RetainedTable:
    """A table of a run's rows that retention prunes by age (:mod:`bftscope.live.retention`).

    ``tier`` ``"raw"``: kept for the raw window (events and the rows derived from them); ``"summary"``: for
    the longer one. Rows are aged by the time of their height (``height`` names the column); rows without a
    height by ``ts`` (a nanosecond column), else never. ``keep_last``: the rows are a state that holds until
    the next row (a validator set written only where it changed), so the last rows before the cut stay.
    """

    name: str
    tier: Literal["raw", "summary"]
    height: str | None = "height"
    ts: str | None = None
    keep_last: bool = False


@dataclass
class NamedNode:
    """The simplest identity: a node known by one name (a family without richer identity uses it)."""

    name: str | None = None
    evidence: list[str] = field(default_factory=list)

    @property
    def known(self) -> bool:
        return self.name is not None

    def merge(self, other: Any) -> None:
        if self.name is None:
            self.name = other.name
        self.evidence.extend(e for e in other.evidence if e not in self.evidence)

    def conflicts(self, other: Any) -> list[str]:
        return [f"name {self.name} vs {other.name}"] if self.name and other.name and self.name != other.name else []


class Family:
    """Neutral defaults for every hook, so a family declares only what it has."""

    name = ""
    kinds: Sequence[str] = ()
    formats: Sequence[FileFormat] = ()
    live_sources: Sequence[Any] = ()
    identity_key = "name"
    identity_aliases: tuple[str, ...] = ("name",)
    derived_version = 1
    whole_run: Any = None
    # The kinds whose events the incremental derive reads (its rows, and whatever it recomputes over the whole
    # run): a live run holding none of them skips it, its derived tables being empty then. None: not declared,
    # the derive always runs. Read with getattr (a family need not be a Family).
    derived_from_kinds: frozenset[str] | None = None

    def is_node_home(self, path: Path) -> bool:
        return False

    def file_order(self, path: Path) -> Any:
        return None

    def not_a_log(self, name: str) -> str | None:
        return None

    def new_identity(self) -> NodeIdentity:
        return NamedNode()

    def home_identity(self, home: Path) -> NodeIdentity:
        raise NotImplementedError(f"the {self.name} family has no node homes")

    def home_names(self, home: Path) -> dict[str, str]:
        return {}

    def node_label(self, ident: NodeIdentity, names: dict[str, str], home: Path | None, path: Path) -> str:
        name = getattr(ident, "name", None)
        return str(name) if name else home.name if home is not None else path.name.split(".")[0]

    def aliases(self, node: NodeRecord) -> list[str]:
        return []

    def resolve_node(self, store: Store, run_id: int, ident: NodeIdentity, label: str, home: Path | None) -> NodeRecord:
        return store.resolve_node(run_id, p2p_id=None, validator=None, moniker=None, label=label)

    def derive(self, store: Store, run_id: int) -> dict[str, int]:
        return {}

    def derive_incremental(self, store: Store, run_id: int, from_height: int) -> dict[str, int]:
        return self.derive(store, run_id)  # without an incremental path: a full rebuild is always right

    def retention_tables(self) -> Sequence[RetainedTable]:
        return (RetainedTable("events", "raw", ts="ts"),)

    live_only = False

    def prune_run(self, store: Store, run_id: int, now: float, settings: Settings) -> dict[str, int] | None:
        return None

    def keep_before_prune(self, store: Store, run_id: int, below_height: int) -> dict[str, int]:
        return {}  # nothing computed from the events is kept beyond them

    def provenance(self, store: Store, run_id: int) -> dict[int, dict[str, Any]]:
        return {}

    def run_counts(self, store: Store, run_id: int) -> dict[str, Any]:
        return {}  # the neutral counts (events of complete sources, derived version) describe its runs

    def node_identities(self, store: Store, run_id: int) -> list[dict[str, Any]]:
        return [{"node": n.node, "label": n.label} for n in store.nodes(run_id)]

    def rollups(self) -> Mapping[str, Metric]:
        return {}

    def refresh_rollups(self, store: Store, run_id: int) -> int:
        from bftscope.analytics import rollups

        return rollups.refresh(store, run_id, self.rollups(), self.encode, self.whole_run)

    def encode(self, name: str, value: Any) -> bytes:
        import orjson

        return orjson.dumps(value)

    def summary_node(self, node: NodeRecord, counts: NodeCounts | None, provenance: dict[str, Any]) -> dict[str, Any]:
        return {
            "node": node.node,
            "label": node.label,
            "events": counts.events if counts else 0,
            "height_range": {"min": counts.min_height, "max": counts.max_height} if counts else None,
        }

    def routers(self) -> Sequence[APIRouter]:
        return ()

    def register_cli(self, app: Any) -> None:
        return None

    async def start_serving(self, ctx: Any) -> None:
        return None

    def publish_live(self, sink: Any, broadcaster: Any, network: str) -> Any:
        return None

    async def stop_serving(self, ctx: Any) -> None:
        return None

    def events(self) -> EventRenderer:
        raise NotImplementedError(f"the {self.name} family does not list events")

    can_follow = False

    def follower(self, name: str, endpoints: Sequence[str], sink: Any, *, store: Store, run: str,
                 settings: Settings | None = None) -> Any:
        from bftscope.errors import InputError

        raise InputError(f"the {self.name} family cannot follow a live network")

    def vote_outcomes(self, store: Store, run_id: int, from_height: int, to_height: int) -> list[dict[str, Any]]:
        return []

    def check_endpoint(self, url: str) -> str:
        from bftscope.live.endpoints import check_endpoint

        return check_endpoint(url)  # http(s) or ws(s) with a host

    def live_sink(self, store: Store, run: str) -> Any:
        from bftscope.ingest.livesink import StoreSink

        return StoreSink(store, run, self.name)  # the neutral events table, and the family's derived tables
