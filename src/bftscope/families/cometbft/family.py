"""The CometBFT family: its kinds, formats, identity, derived tables, rollups, routers, commands and event names.

Nodes are known by their p2p id (the key) and also by validator address and moniker (aliases); the
store keeps the three as columns of ``nodes``. A node home (``config/`` + ``data/``) holds one node's
files and says who it is.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bftscope.families.base import EventRenderer, Family, Metric, RetainedTable
from bftscope.families.cometbft import kinds as K
from bftscope.families.cometbft.analytics import derive, peerids, rollups
from bftscope.families.cometbft.analytics.analyzer import WHOLE_RUN
from bftscope.families.cometbft.kinds import ALL_KINDS
from bftscope.families.cometbft.live.source import RPC_SOURCE
from bftscope.families.cometbft.parse import home
from bftscope.families.cometbft.parse.formats import FORMATS
from bftscope.families.cometbft.parse.identity import Identity
from bftscope.families.cometbft.validators import history

if TYPE_CHECKING:
    from fastapi import APIRouter

    from bftscope.analytics.summary import NodeCounts
    from bftscope.config import Settings
    from bftscope.store.base import NodeRecord, Store

__all__ = ["FAMILY", "CometBFT"]

_WAL_NAME = re.compile(r"^wal(\.\d+)?$")
# Node state files: JSON, never logs. Only the reason given for them comes from the name.
_NOT_LOGS = frozenset({"genesis.json", "node_key.json", "priv_validator_key.json", "priv_validator_state.json",
                       "addrbook.json", "ground_truth.json"})  # fmt: skip

# What retention prunes (docs/live.md "Retention"): events and the rows derived from them with the raw window;
# validator history (validators/history.py), missed votes and per-height summaries with the summary window, the
# set in effect at the cut kept.
RETAINED = (
    RetainedTable("events", "raw", ts="ts"),
    RetainedTable("vote_arrivals", "raw"),
    RetainedTable("deliveries", "raw", ts="sent_ts"),
    RetainedTable("unmatched_receipts", "raw"),
    RetainedTable("validator_sets", "summary", keep_last=True),
    RetainedTable("validator_priorities", "summary"),
    RetainedTable("missed_votes", "summary"),  # written before the events go (missed/kept.py)
    RetainedTable("height_summaries", "summary"),
)


class CometBFT(Family):
    name = "cometbft"
    kinds = ALL_KINDS
    formats = FORMATS
    live_sources: Sequence[Any] = (RPC_SOURCE,)  # the RPC websocket (live/source.py; a network: live/follower.py)
    identity_key = "p2p_id"
    identity_aliases = ("p2p_id", "validator", "moniker")
    # 2: inferred p2p ids, restarts, the min-delay clock estimator, topology; 3: deliveries' event ids;
    # 4: unmatched receipts by height; 5: validator sets with history and proposer priorities (validators/history.py)
    derived_version = 5
    whole_run = WHOLE_RUN
    # Vote arrivals, deliveries and unmatched receipts are built from received, sent and own messages; restarts
    # from process starts (node_info) and overdue timeouts after a WAL's silence; inferred p2p ids from peers of
    # received and sent messages. A followed network's RPC events (votes added, steps, commits) are none of them.
    derived_from_kinds = frozenset({K.MSG_RECEIVED, K.P2P_RECV, K.P2P_SEND, K.MSG_INTERNAL, K.NODE_INFO,
                                    K.TIMEOUT_FIRED})  # fmt: skip

    def is_node_home(self, path: Path) -> bool:
        return home.is_node_home(path)

    def file_order(self, path: Path) -> Any:
        # wal.000, wal.001 … precede the head file "wal".
        if path.parent.name == "cs.wal" and _WAL_NAME.match(path.name):
            suffix = path.name[4:]
            return (str(path.parent), int(suffix) if suffix else 1 << 30)
        return None

    def not_a_log(self, name: str) -> str | None:
        return "node state file (not a log)" if name in _NOT_LOGS else None

    def new_identity(self) -> Identity:
        return Identity()

    def home_identity(self, home_dir: Path) -> Identity:
        return home.home_identity(home_dir)

    def home_names(self, home_dir: Path) -> dict[str, str]:
        return home.genesis_validator_names(home_dir)

    def node_label(self, ident: Any, names: dict[str, str], home_dir: Path | None, path: Path) -> str:
        if ident.validator and ident.validator in names:
            return str(names[ident.validator])
        if ident.moniker:
            return str(ident.moniker)
        if home_dir is not None:
            return home_dir.name
        if ident.p2p_id:
            return str(ident.p2p_id[:12])
        if ident.validator:
            return str(ident.validator[:12])
        return path.name.split(".")[0]

    def aliases(self, node: NodeRecord) -> list[str]:
        return [node.p2p_id] if node.p2p_id else []

    def resolve_node(self, store: Store, run_id: int, ident: Any, label: str, home_dir: Path | None) -> NodeRecord:
        node = store.resolve_node(run_id, p2p_id=ident.p2p_id, validator=ident.validator, moniker=ident.moniker,
                                  label=label)  # fmt: skip
        peerids.record_home(store, run_id, node.node, home_dir, ident)
        history.keep_genesis(store, run_id, node.node, home_dir)  # the set the chain starts with
        return node

    def derive(self, store: Store, run_id: int) -> dict[str, int]:
        # Through the modules (not names imported from them), so a test can stand in for either step.
        # Inferred p2p ids are derived data too: deliveries need them to tie a receipt to its sender.
        peerids.resolve(store, run_id)
        counts = derive.rebuild(store, run_id)
        counts.update(history.rebuild(store, run_id))
        return counts

    def derive_incremental(self, store: Store, run_id: int, from_height: int) -> dict[str, int]:
        # Deliveries tie receipts to senders by p2p id: when new events changed an inferred id, every height's
        # deliveries may change, and only a full rebuild is right.
        before = {n.node: n.p2p_id for n in store.nodes(run_id)}
        peerids.resolve(store, run_id)
        changed = before != {n.node: n.p2p_id for n in store.nodes(run_id)}
        if changed:
            return self.derive(store, run_id)
        # The validator history is not redone per height: a live run's sets come from the follower's /validators
        # fetches (where updates take effect) and the full derive (a rebuild, the sink's flush) redoes the rest;
        # recomputing every height's priorities on each update cost a tenth of a process following 20 networks.
        return derive.rebuild(store, run_id, from_height)

    def retention_tables(self) -> Sequence[RetainedTable]:
        return RETAINED

    def keep_before_prune(self, store: Store, run_id: int, below_height: int) -> dict[str, int]:
        from bftscope.families.cometbft.missed import kept

        return kept.keep(store, run_id, below_height)

    def provenance(self, store: Store, run_id: int) -> dict[int, dict[str, Any]]:
        return peerids.identity_provenance(store, run_id)

    def node_identities(self, store: Store, run_id: int) -> list[dict[str, Any]]:
        return peerids.node_identities(store, run_id)

    def rollups(self) -> Mapping[str, Metric]:
        return rollups.METRICS

    def refresh_rollups(self, store: Store, run_id: int) -> int:
        return rollups.refresh(store, run_id)  # through the module: a test stands in for it

    def encode(self, name: str, value: Any) -> bytes:
        return rollups._encode(name, value)

    def summary_node(self, node: NodeRecord, counts: NodeCounts | None, provenance: dict[str, Any]) -> dict[str, Any]:
        return {
            "node": node.node,
            "label": node.label,
            "p2p_id": node.p2p_id,
            # where the p2p id came from, and disagreements between sources (families/cometbft/analytics/peerids.py)
            "p2p_id_sources": provenance.get("sources", []),
            "identity_conflicts": provenance.get("conflicts", []),
            "validator": node.validator,
            "moniker": node.moniker,
            "events": counts.events if counts else 0,
            "height_range": {"min": counts.min_height, "max": counts.max_height} if counts else None,
        }

    def routers(self) -> Sequence[APIRouter]:
        from bftscope.families.cometbft.api import ROUTERS

        return ROUTERS

    def register_cli(self, app: Any) -> None:
        from bftscope.families.cometbft.cli import register

        register(app)

    def events(self) -> EventRenderer:
        import bftscope.families.cometbft.eventpage as page  # the module is the renderer (its functions)

        return page

    can_follow = True

    def follower(self, name: str, endpoints: Sequence[str], sink: Any, *, store: Store, run: str,
                 settings: Settings | None = None) -> Any:
        # Built as `bftscope watch` builds one: validator sets stored in the run's history, and a run followed
        # before (a server restarted) resumed — nothing written twice, the time it was not followed a gap.
        from bftscope.families.cometbft.live.follower import NetworkFollower
        from bftscope.families.cometbft.live.resume import resume_state
        from bftscope.families.cometbft.live.valsets import record_validator_set

        run_id = store.get_or_create_run(run, self.name).id
        seen, committed, last_seen = resume_state(store, run_id)
        return NetworkFollower(name, list(endpoints), sink, seen=seen, committed=committed, last_seen_at=last_seen,
                               on_validator_set=lambda h, vs: record_validator_set(store, run_id, h, vs))  # fmt: skip

    def vote_outcomes(self, store: Store, run_id: int, from_height: int, to_height: int) -> list[dict[str, Any]]:
        from bftscope.families.cometbft.missed.votes import missed

        return missed(store, run_id, from_height=from_height, to_height=to_height)


FAMILY = CometBFT()
