"""Each node's p2p id when nothing states it: inferred from its peers' configs, genesis and the WALs.

An operator often hands over node homes with only ``config/`` and ``data/cs.wal`` — no
``node_key.json``, no logs. The WALs still name the *sending* peer of every message a node received,
but only by p2p id, so until each node's own id is known, no receipt can be tied to its sender and
every one-hop answer (links, clock skew, network stats, topology) stays empty.

Rules, each an independent *claim* ``node → id`` with its source (strongest first):

1. ``stated``: ``config/node_key.json`` or a log line (``P2P Node ID``, ``Started node``): kept as is.
2. ``genesis gentx memo``: a gentx memo ``<id>@<ip>:<port>`` for the node's validator key or moniker.
Rules 3 and 4 read the sending peer of received messages, which WALs and debug logs both record.

3. ``received messages: fastest deliverer of its own votes``: among the peers that delivered validator
   V's votes to any node, the one whose deliveries came soonest after V's own timestamp (median), other than the
   peers V's own node received from (a node is never its own peer). A relay adds a hop, so V's node is
   the fastest — assuming some node of the run peers with V directly. Clear winners only: the best
   median must be under 0.8 × the next.
4. ``received messages: the one known id never seen as its peer``: a node never receives from itself, so
   of every id the run knows (configs' peer lists, other WALs' peers) minus those this node received from and those
   already placed on other nodes, exactly one left is its own.
5. ``config.toml peer host = moniker/external_address``: a peer entry whose host is the node's moniker or
   external address.
6. ``config.toml peer lists``: the only id missing from the node's own ``persistent_peers``/``seeds``
   while present in another node's list (operators do not list a node as its own peer).

A node takes the id of its strongest claim; when its claims disagree, the disagreement is reported (with
every source and the id each gave) rather than settled silently, and an id claimed by two nodes is left
to neither (reported too). The facts read from each home are kept in ``nodes.meta`` at planning time, so
that the inference can be redone over every node of the run after each ingest (:func:`resolve`).
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from bftscope.families.cometbft.parse.home import home_network
from bftscope.families.cometbft.parse.identity import Identity
from bftscope.store.base import Store

__all__ = ["SOURCES", "identity_provenance", "node_identities", "record_home", "resolve"]

STATED = "stated"
GENTX = "genesis gentx memo"
WAL_FASTEST = "received messages: fastest deliverer of its own votes"
WAL_ABSENT = "received messages: the one known id never seen as its peer"
CONFIG_HOST = "config.toml peer host = moniker/external_address"
CONFIG_LISTS = "config.toml peer lists (the one id missing from its own)"
SOURCES = (STATED, GENTX, WAL_FASTEST, WAL_ABSENT, CONFIG_HOST, CONFIG_LISTS)  # strongest first

# Identity evidence that states a p2p id (families/cometbft/parse/home.py, families/cometbft/parse/logmsgs.py).
_P2P_EVIDENCE = ("config/node_key.json", "log line 'P2P Node ID'", "log line 'Started node'")
_CLEAR_MARGIN = 0.8  # fastest deliverer: best median below this share of the next one
_MIN_VOTES = 3  # fastest deliverer: fewer deliveries from a peer say nothing


def _meta(store: Store, run_id: int) -> dict[int, dict[str, Any]]:
    rows = store.query("SELECT node, meta FROM nodes WHERE run_id = ?", [run_id])
    return {int(node): (json.loads(meta) if meta else {}) for node, meta in rows}


def _write_meta(store: Store, run_id: int, node: int, meta: dict[str, Any]) -> None:
    store.execute("UPDATE nodes SET meta = ? WHERE run_id = ? AND node = ?", [json.dumps(meta), run_id, node])


def record_home(store: Store, run_id: int, node: int, home: Path | None, ident: Identity) -> None:
    """Keep with the node what its home and files say about p2p ids (for :func:`resolve`)."""
    meta = _meta(store, run_id).get(node, {})
    if ident.p2p_id:
        stated = [e for e in ident.evidence if e in _P2P_EVIDENCE]
        meta["stated"] = sorted(set(meta.get("stated", [])) | set(stated or ["identity scan"]))
        if meta.pop("p2p_id_inferred", False):  # a stated id replaces one inferred by an earlier ingest
            store.execute("UPDATE nodes SET p2p_id = ? WHERE run_id = ? AND node = ?", [ident.p2p_id, run_id, node])
    if home is not None:
        meta["home"] = home_network(home)
    _write_meta(store, run_id, node, meta)


def _wal_evidence(
    store: Store, run_id: int, validators: list[str]
) -> tuple[dict[int, set[str]], dict[str, list[tuple[str, float]]]]:
    """Per node, the peer ids it received from or sent to; for each of ``validators``, ``(peer, median ms)``
    of every peer that delivered its votes, fastest first (only for nodes whose id is not stated: on a large
    logged run, where every node states its id, the per-vote scan is not made)."""
    peers: dict[int, set[str]] = defaultdict(set)
    for node, peer in store.query(
        "SELECT DISTINCT node, peer FROM events WHERE run_id = ? AND peer IS NOT NULL"
        " AND kind IN ('msg_received', 'p2p_recv', 'p2p_send')",
        [run_id],
    ):
        peers[int(node)].add(str(peer))
    deliverers: dict[str, list[tuple[str, float]]] = defaultdict(list)
    if not validators:
        return peers, deliverers
    q = store.dialect.quantile("(ts - signer_ts) / 1e6", 0.5)
    marks = ", ".join("?" for _ in validators)
    for validator, peer, median in store.query(
        f"SELECT validator, peer, {q} FROM events WHERE run_id = ? AND kind = 'msg_received' AND msg_type = 'vote'"
        f" AND validator IN ({marks}) AND peer IS NOT NULL AND signer_ts IS NOT NULL"
        f" GROUP BY validator, peer HAVING count(*) >= {_MIN_VOTES} ORDER BY 3, 2",
        [run_id, *validators],
    ):
        deliverers[str(validator)].append((str(peer), float(median)))
    return peers, deliverers


class _Run:
    """The facts of one run's nodes, and the claims they support."""

    def __init__(self, store: Store, run_id: int) -> None:
        self.nodes = store.nodes(run_id)
        self.meta = _meta(store, run_id)
        self.lists = {n.node: [tuple(p) for p in self.meta[n.node]["home"]["peers"]] for n in self.nodes
                      if (self.meta[n.node].get("home") or {}).get("peers")}  # fmt: skip
        self.gentx = [g for m in self.meta.values() for g in (m.get("home") or {}).get("gentx", [])]
        # An id this module set is inferred again; any other (node_key.json, logs, a run stored before
        # inference existed) is stated.
        self.stated = {n.node: n.p2p_id for n in self.nodes
                       if n.p2p_id and not self.meta[n.node].get("p2p_id_inferred")}  # fmt: skip
        unstated = sorted({n.validator for n in self.nodes if n.validator and n.node not in self.stated})
        self.peers, self.deliverers = _wal_evidence(store, run_id, unstated)
        self.known = {p for ps in self.peers.values() for p in ps} | {p for ps in self.lists.values() for p, _ in ps}
        self.known |= {g["id"] for g in self.gentx} | set(self.stated.values())

    def claims(self, node: int, placed: dict[int, str]) -> dict[str, str]:
        """source → id for every rule that names exactly one id for ``node``."""
        n = next(x for x in self.nodes if x.node == node)
        meta = self.meta[node]
        out: dict[str, str] = {}
        if node in self.stated:
            out[STATED] = self.stated[node]
        ids = {
            g["id"]
            for g in self.gentx
            if (n.validator and g.get("validator") == n.validator) or (n.moniker and g.get("moniker") == n.moniker)
        }
        if len(ids) == 1:
            out[GENTX] = ids.pop()
        own_peers = self.peers.get(node, set())
        if n.validator and n.validator in self.deliverers:
            cands = [(p, ms) for p, ms in self.deliverers[n.validator] if p not in own_peers]
            if cands and (len(cands) == 1 or cands[0][1] < _CLEAR_MARGIN * cands[1][1]):
                out[WAL_FASTEST] = cands[0][0]
        if own_peers:
            others = {i for k, i in placed.items() if k != node}
            left = self.known - own_peers - others
            if len(left) == 1:
                out[WAL_ABSENT] = left.pop()
        hosts = {h for h in (n.moniker and n.moniker.lower(), (meta.get("home") or {}).get("external_host")) if h}
        ids = {p for ps in self.lists.values() for p, h in ps if h in hosts}
        if len(ids) == 1:
            out[CONFIG_HOST] = ids.pop()
        if node in self.lists:
            mine = {p for p, _ in self.lists[node]}
            missing = {p for k, ps in self.lists.items() if k != node for p, _ in ps} - mine
            if len(missing) == 1:
                out[CONFIG_LISTS] = missing.pop()
        return out


def _choose(claims: dict[str, str]) -> str | None:
    for source in SOURCES:
        if source in claims:
            return claims[source]
    return None


def resolve(store: Store, run_id: int) -> list[dict[str, Any]]:
    """Infer the p2p id of every node of the run that does not state one, store it with its sources and
    conflicts (``nodes.p2p_id``, ``nodes.meta``), and return per node ``{node, label, p2p_id, sources,
    conflicts}``. Ids inferred by an earlier ingest are inferred again from everything now in the run."""
    run = _Run(store, run_id)
    placed: dict[int, str] = dict(run.stated)
    claims: dict[int, dict[str, str]] = {}
    # The absent-id rule narrows as other nodes are placed: repeat until nothing changes.
    for _ in range(len(run.nodes) + 1):
        claims = {n.node: run.claims(n.node, placed) for n in run.nodes}
        chosen = {k: v for k, c in claims.items() if (v := _choose(c)) is not None}
        by_id: dict[str, list[int]] = defaultdict(list)
        for k, v in chosen.items():
            by_id[v].append(k)
        new = {k: v for k, v in chosen.items() if len(by_id[v]) == 1 or k in run.stated}
        if new == placed:
            break
        placed = new
    out = []
    labels = {n.node: n.label for n in run.nodes}
    for n in run.nodes:
        c = claims.get(n.node, {})
        pid = placed.get(n.node)
        conflicts = []
        if len(set(c.values())) > 1:
            said = "; ".join(f"{s} says {i}" for s, i in c.items())
            kept = f"kept {pid} ({next(s for s in SOURCES if c.get(s) == pid)})" if pid else "left unknown"
            conflicts.append(f"sources disagree on {n.label}'s p2p id: {said}; {kept}")
        mine = _choose(c)
        if mine is not None and pid is None:
            rivals = sorted(labels[k] for k, v in claims.items() if k != n.node and _choose(v) == mine)
            conflicts.append(f"p2p id {mine} is claimed for {n.label} and for {', '.join(rivals)}; left unknown")
        sources = [s for s in SOURCES if pid is not None and c.get(s) == pid]
        if STATED in sources:
            sources[sources.index(STATED)] = ", ".join(run.meta[n.node].get("stated", ["stored with the node"]))
        meta = run.meta[n.node] | {
            "p2p_id_sources": sources,
            "p2p_id_conflicts": conflicts,
            "p2p_id_inferred": n.node not in run.stated and pid is not None,
        }
        # Only what changed is written: a live run resolves again at every update, mostly to the same answer.
        if n.node not in run.stated and pid != n.p2p_id:
            store.execute("UPDATE nodes SET p2p_id = ? WHERE run_id = ? AND node = ?", [pid, run_id, n.node])
        if meta != run.meta[n.node]:
            _write_meta(store, run_id, n.node, meta)
        out.append({"node": n.node, "label": n.label, "p2p_id": pid, "sources": sources, "conflicts": conflicts})
    return out


def identity_provenance(store: Store, run_id: int) -> dict[int, dict[str, list[str]]]:
    """Per node: where its p2p id came from (``sources``) and the disagreements found (``conflicts``)."""
    return {node: {"sources": m.get("p2p_id_sources", []), "conflicts": m.get("p2p_id_conflicts", [])}
            for node, m in _meta(store, run_id).items()}  # fmt: skip


def node_identities(store: Store, run_id: int) -> list[dict[str, Any]]:
    """Per node: ``label``, ``p2p_id``, its ``sources`` and ``conflicts`` (for reports)."""
    ids = identity_provenance(store, run_id)
    return [{"label": n.label, "p2p_id": n.p2p_id, **ids.get(n.node, {"sources": [], "conflicts": []})}
            for n in store.nodes(run_id)]  # fmt: skip
