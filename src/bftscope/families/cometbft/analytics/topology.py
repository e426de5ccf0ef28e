"""Who is directly connected to whom in a run, and what that means for the vote matrix.

Direct links are read from what each node recorded: a message received from (WAL ``msg_received``, log
``p2p_recv``) or sent to (log ``p2p_send``) a peer proves the two were connected at that moment. Only
when no node recorded any peer traffic are the configs used instead (``persistent_peers``/``seeds``:
whom a node was told to dial — intent, not proof, and said so in ``source``). Peers are tied to nodes
by p2p id (stated or inferred: :mod:`.peerids`); traffic with ids outside the run is
counted in ``outside_peers``, not drawn.

From the links, every pair's hop count (breadth-first search) tells which signer → receiver pairs of
the vote matrix are one hop and which went through relays, and the shape is named in words (full mesh,
star, line, ring, split, partial mesh).
"""

from __future__ import annotations

import json
from collections import deque
from itertools import combinations
from typing import Any

from bftscope.store.base import Store

__all__ = ["describe", "hops", "mark_paths", "topology"]

OBSERVED = "messages each node received from (or sent to) its peers"
CONFIGURED = "config.toml persistent_peers/seeds (configured, not observed)"

_OBSERVED_LINKS = """
SELECT DISTINCT least(e.node, pn.node), greatest(e.node, pn.node)
FROM events e JOIN nodes pn ON pn.run_id = e.run_id AND pn.p2p_id = e.peer
WHERE e.run_id = ? AND e.kind IN ('msg_received', 'p2p_recv', 'p2p_send') AND pn.node <> e.node
"""
_OUTSIDE = """
SELECT count(DISTINCT peer) FROM events
WHERE run_id = ? AND kind IN ('msg_received', 'p2p_recv', 'p2p_send') AND peer IS NOT NULL
  AND peer NOT IN (SELECT p2p_id FROM nodes WHERE run_id = ? AND p2p_id IS NOT NULL)
"""


def _configured_links(store: Store, run_id: int, by_id: dict[str, int]) -> set[tuple[int, int]]:
    links = set()
    for node, meta in store.query("SELECT node, meta FROM nodes WHERE run_id = ? AND meta IS NOT NULL", [run_id]):
        for peer, _host in (json.loads(meta).get("home") or {}).get("peers") or []:
            other = by_id.get(peer)
            if other is not None and other != node:
                links.add((min(node, other), max(node, other)))
    return links


def hops(nodes: list[int], links: set[tuple[int, int]]) -> dict[tuple[int, int], int]:
    """Fewest links between every two connected nodes (both orders), by breadth-first search."""
    adj: dict[int, set[int]] = {n: set() for n in nodes}
    for a, b in links:
        adj[a].add(b)
        adj[b].add(a)
    out = {}
    for start in nodes:
        seen = {start: 0}
        queue = deque([start])
        while queue:
            cur = queue.popleft()
            for nxt in adj[cur]:
                if nxt not in seen:
                    seen[nxt] = seen[cur] + 1
                    queue.append(nxt)
        out.update({(start, n): d for n, d in seen.items() if n != start})
    return out


def _relay(a: int, b: int, links: set[tuple[int, int]], labels: dict[int, str]) -> str:
    """The nodes a two-hop pair goes through (a longer path is given by its hop count only)."""
    adj = {n: {y for x, y in links if x == n} | {x for x, y in links if y == n} for n in labels}
    via = sorted(adj[a] & adj[b])
    return ", ".join(labels[v] for v in via)


def describe(labels: dict[int, str], links: set[tuple[int, int]]) -> tuple[str, str]:
    """``(shape, sentence)`` naming the shape of the links between ``labels``' nodes."""
    nodes = sorted(labels)
    n = len(nodes)
    degree = {x: sum(x in link for link in links) for x in nodes}
    dist = hops(nodes, links)
    if n < 2:
        return "single node", "one node: no links to describe"
    if not links:
        return "unknown", "no node recorded a message from another node of the run"
    components: list[list[int]] = []
    for x in nodes:
        if not any(x in c for c in components):
            components.append(sorted([x, *(y for y in nodes if (x, y) in dist)]))
    if len(components) > 1:
        parts = " and ".join("{" + ", ".join(labels[y] for y in c) + "}" for c in components)
        return "split", f"split: {parts} share no direct link"
    if len(links) == n * (n - 1) // 2:
        return "full mesh", f"full mesh: every node is directly connected to every other ({len(links)} links)"
    hubs = [x for x in nodes if degree[x] == n - 1]
    if n >= 3 and len(hubs) == 1 and len(links) == n - 1:
        hub = hubs[0]
        return "star", f"star: {labels[hub]} relays for " + ", ".join(labels[x] for x in nodes if x != hub)
    if n >= 3 and len(links) == n - 1 and max(degree.values()) == 2:
        end = next(x for x in nodes if degree[x] == 1)
        order = sorted(nodes, key=lambda y: dist.get((end, y), 0))
        return "line", "line: " + " – ".join(labels[x] for x in order)
    if n >= 4 and len(links) == n and set(degree.values()) == {2}:
        order, prev = [nodes[0]], None
        while len(order) < n:
            cur = order[-1]
            nxt = next(y for y in nodes if (min(cur, y), max(cur, y)) in links and y != prev and y not in order)
            prev = cur
            order.append(nxt)
        return "ring", "ring: " + " – ".join(labels[x] for x in [*order, order[0]])
    missing = [(a, b) for a, b in combinations(nodes, 2) if (a, b) not in links]
    said = "; ".join(
        f"{labels[a]}–{labels[b]} (via {_relay(a, b, links, labels)})" if dist[(a, b)] == 2
        else f"{labels[a]}–{labels[b]} ({dist[(a, b)]} hops)"
        for a, b in missing
    )  # fmt: skip
    total = n * (n - 1) // 2
    return "partial mesh", f"partial mesh: {len(links)} of {total} possible links; not directly connected: {said}"


def topology(store: Store, run_id: int) -> dict[str, Any]:
    """The run's direct links between nodes (undirected, by label), where they were learned, the shape in
    words, every pair's hop count and how many peer ids seen belong to no node of the run."""
    nodes = store.nodes(run_id)
    labels = {n.node: n.label for n in nodes}
    by_id = {n.p2p_id: n.node for n in nodes if n.p2p_id}
    links = {(int(a), int(b)) for a, b in store.query(_OBSERVED_LINKS, [run_id])}
    source = OBSERVED if links else None
    if not links:
        links = _configured_links(store, run_id, by_id)
        source = CONFIGURED if links else None
    shape, sentence = describe(labels, links)
    unknown = sorted(labels[n.node] for n in nodes if not n.p2p_id)
    if unknown and len(labels) > 1:
        # a node without a p2p id cannot be named as anyone's sender: its links are missing, not absent
        sentence += f" (without a known p2p id, the links of {', '.join(unknown)} cannot be seen)"
    dist = hops(sorted(labels), links)
    return {
        "nodes": [labels[x] for x in sorted(labels)],
        "edges": [[labels[a], labels[b]] for a, b in sorted(links)],
        "source": source,
        "shape": shape,
        "description": sentence,
        "pairs": [
            {"a": labels[a], "b": labels[b], "hops": dist.get((a, b))} for a, b in combinations(sorted(labels), 2)
        ],
        "outside_peers": int(store.query(_OUTSIDE, [run_id, run_id])[0][0]),
        "unidentified_nodes": unknown,
    }


def mark_paths(vote_matrix: list[dict[str, Any]], topo: dict[str, Any]) -> list[dict[str, Any]]:
    """The vote matrix with each row's ``hops`` between signer and receiver (1: direct; 2+: relayed; None:
    not known) and ``path`` in words."""
    dist = {(p["a"], p["b"]): p["hops"] for p in topo["pairs"]} | {(p["b"], p["a"]): p["hops"] for p in topo["pairs"]}
    out = []
    for row in vote_matrix:
        h = dist.get((row["signer"], row["receiver"]))
        path = "unknown" if h is None else "one hop" if h == 1 else f"relayed ({h} hops)"
        out.append(row | {"hops": h, "path": path})
    return out
