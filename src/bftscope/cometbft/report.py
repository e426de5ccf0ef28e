"""The run report: the key tables of a CometBFT run in one dict (for ``--json`` and the API), and their
rendering as terminal tables. Plots of the same report are in :mod:`bftscope.cometbft.plots`."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from bftscope.cometbft import explain, metrics, peerids, topology
from bftscope.cometbft.restarts import restarts
from bftscope.cometbft.rollups import answer
from bftscope.store.base import Store
from bftscope.timeutil import format_ns

__all__ = ["build_report", "render_report"]


def build_report(store: Store, run_id: int) -> dict[str, Any]:
    """The report's tables, from the run's rollups (computed live for a run that has none)."""
    report = {name: answer(store, run_id, name) for name in _SECTIONS}
    report["links"] = metrics.link_latency(store, run_id, by_type=False)
    report["vote_matrix"] = topology.mark_paths(report["vote_matrix"], report["topology"])
    report["identities"] = peerids.node_identities(store, run_id)
    report["restarts"] = restarts(store, run_id)
    report["unread_sources"] = explain.unread_sources(store, run_id)
    report["no_data"] = explain.empty_sections(report)
    report["ranking_note"] = explain.ranking_note(report["node_ranking"])
    report["definitions"] = explain.DEFINITIONS
    return report


_SECTIONS = ("vote_matrix", "clock_skew", "clock_offsets", "participation", "proposers", "node_ranking", "heights",
             "extra_rounds", "step_durations", "topology")  # fmt: skip


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:,.1f}"


def render_report(out: Console, rep: dict[str, Any], *, top: int = 20) -> None:
    """Print the report's tables; long tables keep their ``top`` most telling rows and say so. A section
    without data says which input would give it; statuses are defined at the end."""
    no_data = rep.get("no_data", {})

    def empty(section: str) -> None:
        if section in no_data:
            out.print(f"  [italic]{no_data[section]}[/italic]")

    if rep.get("unread_sources"):
        t = Table("node", "file", "format", "why", title="Files that gave nothing")
        for u in rep["unread_sources"]:
            t.add_row(u["node"], u["file"], u["format"], u["reason"])
        out.print(t)
    for n in rep["identities"]:  # an inferred or disputed p2p id says so: every one-hop answer rests on it
        out.print(f"{n['label']}: p2p id {n['p2p_id'] or 'unknown'} from {'; '.join(n['sources']) or 'nowhere'}"
                  + "".join(f"\n  [yellow]conflict[/yellow] {c}" for c in n["conflicts"]))  # fmt: skip
    topo = rep["topology"]
    out.print(f"Topology: {topo['description']}" + (f" (from {topo['source']})" if topo["source"] else ""))
    t = Table("signer", "receiver", "votes", "p50 ms", "p95 ms", "p99 ms", "max ms", "path",
              title="Vote propagation (signer's timestamp → first receipt)")  # fmt: skip
    for r in rep["vote_matrix"]:
        t.add_row(r["signer"], r["receiver"], str(r["count"]), _ms(r["p50_ms"]), _ms(r["p95_ms"]),
                  _ms(r["p99_ms"]), _ms(r["max_ms"]), r.get("path", "-"))  # fmt: skip
    out.print(t)
    empty("vote_matrix")
    links = sorted(rep["links"], key=lambda r: -(r["p50_ms"] or 0))
    title = f"Slowest one-hop links (receiver clock − sender clock), {min(top, len(links))} of {len(links)}"
    t = Table("sender", "receiver", "sent", "received", "rate", "p50 ms", "p95 ms", "p99 ms",
              "p50 skew-corrected ms", "matched by", title=title)  # fmt: skip
    for r in links[:top]:
        rate = "-" if r["delivery_rate"] is None else f"{100 * r['delivery_rate']:.1f}%"
        t.add_row(r["sender"], r["receiver"], str(r["sent"]), str(r["received"]), rate, _ms(r["p50_ms"]),
                  _ms(r["p95_ms"]), _ms(r["p99_ms"]), _corrected(r), r["matched_by"])  # fmt: skip
    out.print(t)
    empty("links")
    _render_clocks(out, rep, top)
    empty("clock_skew")
    t = Table("rank", "node", "median lateness (ms)", "last to arrive", "votes",
              title="Nodes slowing the network (how late their votes arrive vs. the median signer)")  # fmt: skip
    for r in rep["node_ranking"]:
        t.add_row(str(r["rank"]), r["node"], f"{r['median_lateness_ms']:+.1f}", f"{100 * r['late_share']:.0f}%",
                  str(r["votes"]))  # fmt: skip
    out.print(t)
    empty("node_ranking")
    if rep.get("ranking_note"):
        out.print(f"  {rep['ranking_note']}")
    slow = [h for h in rep["heights"] if h["rounds"] > 1]
    out.print(f"{len(rep['heights'])} heights, {len(slow)} needed more than one round")
    empty("heights")
    if rep.get("restarts"):
        t = Table("node", "down from", "back at", "down (s)", "resumed at height", "evidence", title="Restarts")
        for r in rep["restarts"]:
            t.add_row(r["node"], format_ns(r["down_from_ns"]), format_ns(r["up_ns"]), f"{r['down_ms'] / 1e3:,.1f}",
                      str(r["height"] or "-"), "; ".join(r["evidence"]))  # fmt: skip
        out.print(t)
        hit = [f"{h['height']} ({h['downtime_ms'] / 1e3:,.1f} s)" for h in rep["heights"] if h.get("downtime_ms")]
        if hit:
            out.print(f"  every node was down during height {', '.join(hit)}: left out of its duration")
    t = Table("height", "round", "proposer", "nodes with proposal", "nil prevotes", "timeouts", "why",
              title="Rounds of heights that needed more than one")  # fmt: skip
    for r in rep["extra_rounds"]:
        t.add_row(str(r["height"]), str(r["round"]), r["proposer"], str(r["nodes_with_proposal"]),
                  str(r["nil_prevotes"]), ", ".join(r["timeouts"]), r["reason"])  # fmt: skip
    out.print(t)
    t = Table("validator", "node", "voted", "late", "nil", "missing", "missing at capture edge", title="Participation")
    for v, c in rep["participation"]["validators"].items():
        t.add_row(v[:16], c["label"], str(c["voted"]), str(c["late"]), str(c["nil"]), str(c["missing"]),
                  str(c["edge_missing"]))  # fmt: skip
    out.print(t)
    empty("participation")
    known = any(p["designated"] is not None for p in rep["proposers"])
    cols = ["validator", "node", *(["designated"] if known else []), "proposed", "committed",
            *(["no proposal seen"] if known else [])]  # fmt: skip
    t = Table(*cols, title="Proposers")
    for p in rep["proposers"]:
        cells = [p["validator"][:16], p["label"], str(p["designated"]), str(p["proposed"]), str(p["committed"]),
                 str(p["missed"])]  # fmt: skip
        t.add_row(*(cells if known else cells[:2] + cells[3:5]))
    out.print(t)
    empty("proposers")
    empty("designated")
    t = Table("term", "meaning", title="Definitions")
    for term, meaning in rep.get("definitions", {}).items():
        t.add_row(term, meaning)
    out.print(t)


def _interval(iv: list[float] | None) -> str:
    return "-" if iv is None else f"[{iv[0]:+.1f}, {iv[1]:+.1f}]"


def _corrected(r: dict[str, Any]) -> str:
    """The skew-corrected p50: a value where the clock lead is estimated, else the interval it lies in."""
    if r.get("corrected_p50_ms") is not None:
        return _ms(r["corrected_p50_ms"])
    iv = r.get("corrected_p50_interval_ms")
    return "-" if iv is None else f"{iv[0]:,.1f} … {iv[1]:,.1f}"


def _render_clocks(out: Console, rep: dict[str, Any], top: int) -> None:
    """The clock tables (estimator: cometbft/clock.py): per pair, then per node."""
    # rows stored by an older version lack the new fields (re-ingest the run to refresh its rollups)
    skew = sorted(rep["clock_skew"],
                  key=lambda r: -abs(r.get("symmetric_floor_estimate_ms", r["b_ahead_of_a_ms"]) or 0))  # fmt: skip
    title = (f"Clock skew (from minimum one-way delays; 'not determinable' where path asymmetry could explain it), "
             f"largest {min(top, len(skew))} of {len(skew)}")  # fmt: skip
    t = Table("a", "b", "b ahead of a (ms)", "interval (ms)", "status", "path asymmetry seen (ms)", "one-way (ms)",
              title=title)  # fmt: skip
    for r in skew[:top]:
        ahead = "-" if r["b_ahead_of_a_ms"] is None else f"{r['b_ahead_of_a_ms']:+.2f}"
        asym = r.get("asymmetry_ms")
        t.add_row(r["a"], r["b"], ahead, _interval(r.get("interval_ms")), r.get("status", "median-based (old run)"),
                  "-" if asym is None else f"{asym:.1f}", _ms(r["one_way_ms"]))  # fmt: skip
    out.print(t)
    nodes = rep.get("clock_offsets") or []
    if nodes:
        t = Table("node", "offset (ms)", "interval (ms)", "status", "via",
                  title=f"Clock offset per node, relative to {nodes[0]['reference']}")  # fmt: skip
        for r in nodes:
            off = "-" if r["offset_ms"] is None else f"{r['offset_ms']:+.2f}"
            via = " → ".join(r["evidence"]["path"] or []) or r["evidence"].get("reason", "")
            t.add_row(r["node"], off, _interval(r["interval_ms"]), r["status"], via)
        out.print(t)
