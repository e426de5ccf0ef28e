"""What the run report says besides its numbers: the definition of every status and column it shows, which
input would fill a section that has no data, and which files of the run gave nothing and why.

An operator reading a report of an older network or of info-level logs should never face an empty table
without being told why; the text report and ``report.html`` both print these notes, from here.
"""

from __future__ import annotations

from typing import Any

from bftscope.store.base import Store

__all__ = ["DEFINITIONS", "NEEDS", "empty_sections", "ranking_note", "unread_sources"]

# Status / column → definition, in the order the report's sections use them.
DEFINITIONS: dict[str, str] = {
    "voted": "the validator's vote for a block was seen, in time at most receivers",
    "late": "the vote was seen, but at more than half of its receivers only after they had moved on "
    "(a prevote after the receiver entered precommit, a precommit after it entered commit)",
    "nil": "the validator voted nil (for no block)",
    "missing": "no vote of the validator was seen for that height, round and type",
    "missing at capture edge": "missing at the first or last height of the capture, which not every node "
    "recorded whole: not counted against the validator",
    "median lateness": "median, over the node's votes, of the vote's arrival minus the median arrival of "
    "the same vote type at the same receiver (one clock, so no skew)",
    "last to arrive": "share of the node's votes that were the last of their type to arrive at a receiver",
    "designated": "rounds in which the validator was the proposer chosen by CometBFT's rotation",
    "proposed": "rounds in which a proposal signed by the validator was seen",
    "committed": "of those, rounds whose proposal was committed",
    "no proposal seen": "designated rounds in which no proposal from the validator was seen",
    "restart": "the node's process started again after it had been recording (log start-up line, or its "
    "WAL silent before an overdue timeout); the downtime is left out of step and height durations",
}

# Section → the input that would give it data.
NEEDS: dict[str, str] = {
    "vote_matrix": "votes received by other nodes with their signer's timestamp: consensus WALs "
    "(Tendermint ≥ 0.34) or debug-level logs (consensus Receive / p2p Received bytes lines)",
    "links": "messages matched between sender and receiver: debug-level logs with p2p Send and Received "
    "bytes lines, or the WALs of several nodes",
    "clock_skew": "one-hop deliveries in both directions between two nodes (as for the links)",
    "node_ranking": "votes received by other nodes (as for vote propagation)",
    "heights": "consensus steps: WALs, or logs with 'Entering … step' lines (consensus module at info level)",
    "participation": "votes and consensus steps: WALs, or debug-level logs",
    "proposers": "proposals: WALs, or logs with 'Received proposal' / 'Signed proposal' lines",
    "designated": "the round's proposer named in logs ('Propose step; our turn / not our turn', 1.x "
    "'Entering new round' with proposer)",
}


def empty_sections(report: dict[str, Any]) -> dict[str, str]:
    """Section → ``"no data: needs …"`` for every section of ``report`` without rows."""
    sizes = {
        "vote_matrix": len(report.get("vote_matrix") or []),
        "links": len(report.get("links") or []),
        "clock_skew": len(report.get("clock_skew") or []),
        "node_ranking": len(report.get("node_ranking") or []),
        "heights": len(report.get("heights") or []),
        "participation": len((report.get("participation") or {}).get("validators") or {}),
        "proposers": len(report.get("proposers") or []),
    }
    out = {name: f"no data: needs {NEEDS[name]}" for name, n in sizes.items() if n == 0}
    if report.get("proposers") and all(p.get("designated") is None for p in report["proposers"]):
        out["designated"] = f"designated proposer not known: needs {NEEDS['designated']}"
    return out


def ranking_note(rows: list[dict[str, Any]]) -> str | None:
    """What the ranking is ordered by when nodes tie on median lateness (None when none tie)."""
    if len(rows) < 2:
        return None
    medians = [round(r["median_lateness_ms"], 1) for r in rows]
    if len(set(medians)) == 1:
        return (f"all {len(rows)} nodes tie on median lateness ({medians[0]:+.1f} ms): ranked by how often "
                "their vote was the last to arrive")  # fmt: skip
    if len(set(medians)) < len(medians):
        return "nodes with equal median lateness are ranked by how often their vote was the last to arrive"
    return None


def unread_sources(store: Store, run_id: int) -> list[dict[str, Any]]:
    """Files of the run that gave no event: node, file, format and why (their warning or main skip reason)."""
    labels = {n.node: n.label for n in store.nodes(run_id)}
    out = []
    for s in store.sources(run_id):
        if s.events:
            continue
        top = max(s.skipped.items(), key=lambda kv: kv[1])[0] if s.skipped else None
        reason = next((w for w in s.warnings if top is None or w.startswith(top)), None) or top or "no events"
        out.append({"node": labels.get(s.node, str(s.node)), "file": s.name, "format": s.format, "reason": reason})
    return out
