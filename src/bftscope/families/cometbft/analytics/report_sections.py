"""What the run report says, once: its sections in order, each a title, a header, rows of formatted cells and
the lines around them, built from a :func:`.report.build_report` dict.

The terminal report (:func:`.report.render_report`) and ``report.html``
(:mod:`.report_html`) only lay these out. Each used to build its own tables, and they drifted
(a column in one and not the other, a note placed differently); with one description they cannot.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from bftscope.timeutil import format_ns

__all__ = ["Line", "Section", "sections"]


@dataclass(frozen=True)
class Line:
    """A line of prose around a table. ``note`` lines explain (italic); ``warning`` lines flag a doubt."""

    text: str
    kind: Literal["text", "note", "warning"] = "text"


@dataclass(frozen=True)
class Section:
    """One part of the report: ``before`` lines, then the table (when it has a header), then ``after`` lines.

    ``limit`` marks a long table whose terminal rendering keeps only its first rows, saying how many of
    how many in the title (``limit`` is the word before the count, e.g. ``"largest "``); the page shows all."""

    title: str | None
    header: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    before: list[Line] = field(default_factory=list)
    after: list[Line] = field(default_factory=list)
    limit: str | None = None


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:,.1f}"


def _interval(iv: list[float] | None) -> str:
    return "-" if iv is None else f"[{iv[0]:+.1f}, {iv[1]:+.1f}]"


def _corrected(r: dict[str, Any]) -> str:
    """The skew-corrected p50: a value where the clock lead is estimated, else the interval it lies in."""
    if r.get("corrected_p50_ms") is not None:
        return _ms(r["corrected_p50_ms"])
    iv = r.get("corrected_p50_interval_ms")
    return "-" if iv is None else f"{iv[0]:,.1f} … {iv[1]:,.1f}"


def _notes(rep: dict[str, Any], *names: str) -> list[Line]:
    """The "no data: needs …" notes of the named sections that have none."""
    no_data = rep.get("no_data") or {}
    return [Line(no_data[n], "note") for n in names if n in no_data]


def sections(rep: dict[str, Any]) -> list[Section]:
    """The report's sections, in the order both renderings show them."""
    return [
        _nodes(rep),
        *_unread(rep),
        _vote_matrix(rep),
        _links(rep),
        *_clocks(rep),
        _ranking(rep),
        _heights(rep),
        *_restarts(rep),
        _extra_rounds(rep),
        _participation(rep),
        _proposers(rep),
        Section("Definitions", ["term", "meaning"], [[k, v] for k, v in (rep.get("definitions") or {}).items()]),
    ]


def _nodes(rep: dict[str, Any]) -> Section:
    """Each node's p2p id and where it came from, then the topology built on them. An inferred or disputed id
    says so: every one-hop answer of the report rests on these ids."""
    rows, after = [], []
    for n in rep.get("identities") or []:
        rows.append([n["label"], n["p2p_id"] or "unknown", "; ".join(n["sources"]) or "nowhere"])
        after += [Line(f"conflict {c}", "warning") for c in n["conflicts"]]
    topo = rep.get("topology")
    if topo:
        after.append(Line(f"Topology: {topo['description']}"
                          + (f" (from {topo['source']})" if topo.get("source") else "")))  # fmt: skip
    return Section("Nodes", ["node", "p2p id", "identified from"], rows, after=after)


def _unread(rep: dict[str, Any]) -> list[Section]:
    if not rep.get("unread_sources"):
        return []
    rows = [[u["node"], u["file"], u["format"] or "-", u["reason"]] for u in rep["unread_sources"]]
    return [Section("Files that gave nothing", ["node", "file", "format", "why"], rows)]


def _vote_matrix(rep: dict[str, Any]) -> Section:
    rows = [[r["signer"], r["receiver"], str(r["count"]), _ms(r["p50_ms"]), _ms(r["p95_ms"]), _ms(r["p99_ms"]),
             _ms(r["max_ms"]), r.get("path", "-")] for r in rep["vote_matrix"]]  # fmt: skip
    return Section("Vote propagation (signer's timestamp → first receipt)",
                   ["signer", "receiver", "votes", "p50 ms", "p95 ms", "p99 ms", "max ms", "path"], rows,
                   after=_notes(rep, "vote_matrix"))  # fmt: skip


def _links(rep: dict[str, Any]) -> Section:
    rows = []
    for r in sorted(rep["links"], key=lambda r: -(r["p50_ms"] or 0)):
        rate = "-" if r["delivery_rate"] is None else f"{100 * r['delivery_rate']:.1f}%"
        rows.append([r["sender"], r["receiver"], str(r["sent"]), str(r["received"]), rate, _ms(r["p50_ms"]),
                     _ms(r["p95_ms"]), _ms(r["p99_ms"]), _corrected(r), r["matched_by"]])  # fmt: skip
    return Section("Slowest one-hop links (receiver clock − sender clock)",
                   ["sender", "receiver", "sent", "received", "rate", "p50 ms", "p95 ms", "p99 ms",
                    "p50 skew-corrected ms", "matched by"], rows, after=_notes(rep, "links"), limit="")  # fmt: skip


def _clocks(rep: dict[str, Any]) -> list[Section]:
    """The clock tables (estimator: families/cometbft/analytics/clock.py): per pair, then per node."""
    # rows stored by an older version lack the new fields (re-ingest the run to refresh its rollups)
    skew = sorted(rep["clock_skew"],
                  key=lambda r: -abs(r.get("symmetric_floor_estimate_ms", r["b_ahead_of_a_ms"]) or 0))  # fmt: skip
    rows = []
    for r in skew:
        ahead = "-" if r["b_ahead_of_a_ms"] is None else f"{r['b_ahead_of_a_ms']:+.2f}"
        asym = r.get("asymmetry_ms")
        rows.append([r["a"], r["b"], ahead, _interval(r.get("interval_ms")), r.get("status", "median-based (old run)"),
                     "-" if asym is None else f"{asym:.1f}", _ms(r["one_way_ms"])])  # fmt: skip
    out = [Section("Clock skew (from minimum one-way delays; 'not determinable' where path asymmetry could "
                   "explain it)", ["a", "b", "b ahead of a (ms)", "interval (ms)", "status",
                   "path asymmetry seen (ms)", "one-way (ms)"], rows, after=_notes(rep, "clock_skew"),
                   limit="largest ")]  # fmt: skip
    nodes = rep.get("clock_offsets") or []
    if nodes:
        rows = []
        for r in nodes:
            off = "-" if r["offset_ms"] is None else f"{r['offset_ms']:+.2f}"
            via = " → ".join(r["evidence"].get("path") or []) or r["evidence"].get("reason", "")
            rows.append([r["node"], off, _interval(r["interval_ms"]), r["status"], via])
        out.append(Section(f"Clock offset per node, relative to {nodes[0]['reference']}",
                           ["node", "offset (ms)", "interval (ms)", "status", "via"], rows))  # fmt: skip
    return out


def _ranking(rep: dict[str, Any]) -> Section:
    rows = [[str(r["rank"]), r["node"], f"{r['median_lateness_ms']:+.1f}", f"{100 * r['late_share']:.0f}%",
             str(r["votes"])] for r in rep["node_ranking"]]  # fmt: skip
    after = _notes(rep, "node_ranking") + ([Line(rep["ranking_note"], "note")] if rep.get("ranking_note") else [])
    return Section("Nodes slowing the network (how late their votes arrive vs. the median signer)",
                   ["rank", "node", "median lateness (ms)", "last to arrive", "votes"], rows, after=after)  # fmt: skip


def _heights(rep: dict[str, Any]) -> Section:
    slow = [h for h in rep["heights"] if h["rounds"] > 1]
    line = Line(f"{len(rep['heights'])} heights, {len(slow)} needed more than one round")
    return Section("Heights", before=[line], after=_notes(rep, "heights"))


def _restarts(rep: dict[str, Any]) -> list[Section]:
    if not rep.get("restarts"):
        return []
    rows = [[r["node"], format_ns(r["down_from_ns"]), format_ns(r["up_ns"]), f"{r['down_ms'] / 1e3:,.1f}",
             str(r["height"] or "-"), "; ".join(r["evidence"])] for r in rep["restarts"]]  # fmt: skip
    hit = [f"{h['height']} ({h['downtime_ms'] / 1e3:,.1f} s)" for h in rep["heights"] if h.get("downtime_ms")]
    note = f"every node was down during height {', '.join(hit)}: left out of its duration"
    after = [Line(note, "note")] if hit else []
    return [Section("Restarts", ["node", "down from", "back at", "down (s)", "resumed at height", "evidence"], rows,
                    after=after)]  # fmt: skip


def _extra_rounds(rep: dict[str, Any]) -> Section:
    rows = [[str(r["height"]), str(r["round"]), r["proposer"], str(r["nodes_with_proposal"]), str(r["nil_prevotes"]),
             ", ".join(r["timeouts"]), r["reason"]] for r in rep["extra_rounds"]]  # fmt: skip
    return Section(
        "Rounds of heights that needed more than one",
        ["height", "round", "proposer", "nodes with proposal", "nil prevotes", "timeouts", "why"],
        rows,
    )


def _participation(rep: dict[str, Any]) -> Section:
    rows = [[v[:16], c["label"], str(c["voted"]), str(c["late"]), str(c["nil"]), str(c["missing"]),
             str(c["edge_missing"])] for v, c in rep["participation"]["validators"].items()]  # fmt: skip
    return Section("Participation", ["validator", "node", "voted", "late", "nil", "missing", "missing at capture edge"],
                   rows, after=_notes(rep, "participation"))  # fmt: skip


def _proposers(rep: dict[str, Any]) -> Section:
    # without any designated proposer known, its two columns would be all zeros: left out, and a note says why
    known = any(p["designated"] is not None for p in rep["proposers"])
    header = ["validator", "node", *(["designated"] if known else []), "proposed", "committed",
              *(["no proposal seen"] if known else [])]  # fmt: skip
    rows = []
    for p in rep["proposers"]:
        cells = [p["validator"][:16], p["label"], str(p["designated"]), str(p["proposed"]), str(p["committed"]),
                 str(p["missed"])]  # fmt: skip
        rows.append(cells if known else cells[:2] + cells[3:5])
    return Section("Proposers", header, rows, after=_notes(rep, "proposers", "designated"))
