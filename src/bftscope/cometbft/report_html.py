"""``report.html``: the whole run report on one self-contained page (plots inlined), for people who would
rather open a file than read a terminal.

It carries everything the text report prints — files that gave nothing, vote propagation, slowest links,
topology (when the report has one), clock skew, node ranking and its tie note, heights and restarts,
extra rounds, participation, proposers, the "no data: needs …" notes and the definitions — from the
same report dict, so the two cannot drift apart in content.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

from bftscope.timeutil import format_ns

__all__ = ["write_html"]


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:,.1f}"


def _interval(iv: list[float] | None) -> str:
    return "-" if iv is None else f"[{iv[0]:+.1f}, {iv[1]:+.1f}]"


def _table(title: str, header: list[str], rows: list[list[Any]], note: str | None = None) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    table = f"<table><tr>{head}</tr>{body}</table>" if rows else ""
    return f"<h2>{html.escape(title)}</h2>{table}" + (f'<p class="note">{html.escape(note)}</p>' if note else "")


def _generic(title: str, rows: Any) -> str:
    """A section whose shape this page does not know (added by another part of the report): its keys as columns."""
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        return f"<h2>{html.escape(title)}</h2><pre>{html.escape(str(rows))}</pre>"
    header = list(dict.fromkeys(k for r in rows for k in r))
    return _table(title, header, [[r.get(k, "") for k in header] for r in rows])


def _sections(rep: dict[str, Any]) -> list[str]:
    no_data = rep.get("no_data", {})
    out = []
    if rep.get("unread_sources"):
        out.append(
            _table(
                "Files that gave nothing",
                ["node", "file", "format", "why"],
                [[u["node"], u["file"], u["format"], u["reason"]] for u in rep["unread_sources"]],
            )
        )
    out.append(
        _table(
            "Vote propagation (signer's timestamp → first receipt)",
            ["signer", "receiver", "votes", "p50 ms", "p95 ms", "p99 ms", "max ms", "path"],
            [
                [
                    r["signer"],
                    r["receiver"],
                    r["count"],
                    _ms(r["p50_ms"]),
                    _ms(r["p95_ms"]),
                    _ms(r["p99_ms"]),
                    _ms(r["max_ms"]),
                    r.get("path", "-"),
                ]
                for r in rep["vote_matrix"]
            ],
            no_data.get("vote_matrix"),
        )
    )
    links = sorted(rep["links"], key=lambda r: -(r["p50_ms"] or 0))
    out.append(
        _table(
            "Slowest one-hop links (receiver clock − sender clock)",
            ["sender", "receiver", "sent", "received", "rate", "p50 ms", "p95 ms", "p99 ms", "matched by"],
            [
                [
                    r["sender"],
                    r["receiver"],
                    r["sent"],
                    r["received"],
                    "-" if r["delivery_rate"] is None else f"{100 * r['delivery_rate']:.1f}%",
                    _ms(r["p50_ms"]),
                    _ms(r["p95_ms"]),
                    _ms(r["p99_ms"]),
                    r["matched_by"],
                ]
                for r in links
            ],
            no_data.get("links"),
        )
    )
    if rep.get("topology") is not None:
        topo = rep["topology"]
        out.append(f"<p>Topology: {html.escape(topo['description'])}"
                   + (f" (from {html.escape(topo['source'])})" if topo.get("source") else "") + "</p>")
    skew = sorted(rep["clock_skew"], key=lambda r: -abs(r.get("symmetric_floor_estimate_ms") or 0))
    out.append(
        _table(
            "Clock skew (from minimum one-way delays; 'not determinable' where path asymmetry could explain it)",
            ["a", "b", "b ahead of a (ms)", "interval (ms)", "status", "path asymmetry seen (ms)", "one-way (ms)"],
            [
                [
                    r["a"],
                    r["b"],
                    "-" if r.get("b_ahead_of_a_ms") is None else f"{r['b_ahead_of_a_ms']:+.2f}",
                    _interval(r.get("interval_ms")),
                    r.get("status", "median-based (old run)"),
                    _ms(r.get("asymmetry_ms")),
                    _ms(r.get("one_way_ms")),
                ]
                for r in skew
            ],
            no_data.get("clock_skew"),
        )
    )
    if rep.get("clock_offsets"):
        offsets = rep["clock_offsets"]
        out.append(
            _table(
                f"Clock offset per node, relative to {offsets[0]['reference']}",
                ["node", "offset (ms)", "interval (ms)", "status"],
                [
                    [
                        r["node"],
                        "-" if r["offset_ms"] is None else f"{r['offset_ms']:+.2f}",
                        _interval(r["interval_ms"]),
                        r["status"],
                    ]
                    for r in offsets
                ],
            )
        )
    note = " ".join(n for n in (no_data.get("node_ranking"), rep.get("ranking_note")) if n) or None
    out.append(
        _table(
            "Nodes slowing the network (how late their votes arrive vs. the median signer)",
            ["rank", "node", "median lateness (ms)", "last to arrive", "votes"],
            [
                [r["rank"], r["node"], f"{r['median_lateness_ms']:+.1f}", f"{100 * r['late_share']:.0f}%", r["votes"]]
                for r in rep["node_ranking"]
            ],
            note,
        )
    )
    hs = rep["heights"]
    slow = [h for h in hs if h["rounds"] > 1]
    out.append(f"<p>{len(hs)} heights, {len(slow)} needed more than one round.</p>")
    if "heights" in no_data:
        out.append(f'<p class="note">{html.escape(no_data["heights"])}</p>')
    if rep.get("restarts"):
        down = [f"{h['height']} ({h['downtime_ms'] / 1e3:,.1f} s)" for h in hs if h.get("downtime_ms")]
        out.append(
            _table(
                "Restarts",
                ["node", "down from", "back at", "down (s)", "resumed at height", "evidence"],
                [
                    [
                        r["node"],
                        format_ns(r["down_from_ns"]),
                        format_ns(r["up_ns"]),
                        f"{r['down_ms'] / 1e3:,.1f}",
                        r["height"] or "-",
                        "; ".join(r["evidence"]),
                    ]
                    for r in rep["restarts"]
                ],
                f"every node was down during height {', '.join(down)}: left out of its duration" if down else None,
            )
        )
    out.append(
        _table(
            "Rounds of heights that needed more than one",
            ["height", "round", "proposer", "nodes with proposal", "nil prevotes", "timeouts", "why"],
            [
                [
                    r["height"],
                    r["round"],
                    r["proposer"],
                    r["nodes_with_proposal"],
                    r["nil_prevotes"],
                    ", ".join(r["timeouts"]),
                    r["reason"],
                ]
                for r in rep["extra_rounds"]
            ],
        )
    )
    out.append(
        _table(
            "Participation",
            ["validator", "node", "voted", "late", "nil", "missing", "missing at capture edge"],
            [
                [v[:16], c["label"], c["voted"], c["late"], c["nil"], c["missing"], c["edge_missing"]]
                for v, c in rep["participation"]["validators"].items()
            ],
            no_data.get("participation"),
        )
    )
    known = any(p["designated"] is not None for p in rep["proposers"])
    header = [
        "validator",
        "node",
        *(["designated"] if known else []),
        "proposed",
        "committed",
        *(["no proposal seen"] if known else []),
    ]
    rows = []
    for p in rep["proposers"]:
        cells = [p["validator"][:16], p["label"], p["designated"], p["proposed"], p["committed"], p["missed"]]
        rows.append(cells if known else cells[:2] + cells[3:5])
    note = " ".join(n for n in (no_data.get("proposers"), no_data.get("designated")) if n) or None
    out.append(_table("Proposers", header, rows, note))
    out.append(_table("Definitions", ["term", "meaning"], [[k, v] for k, v in rep.get("definitions", {}).items()]))
    return out


def write_html(run: str, rep: dict[str, Any], images: list[Path], path: Path) -> None:
    """Write the page for ``rep`` (a :func:`bftscope.cometbft.report.build_report` dict) with ``images``."""
    imgs = "".join(
        f'<img alt="{html.escape(p.stem)}" src="data:image/png;base64,{base64.b64encode(p.read_bytes()).decode()}">'
        for p in images
    )
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>bftscope report: {html.escape(run)}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1300px}}img{{max-width:100%;margin:1em 0}}
table{{border-collapse:collapse;margin-bottom:1em}}td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}
th{{background:#eee}}.note{{font-style:italic;color:#555}}</style></head><body>
<h1>bftscope report: {html.escape(run)}</h1>{imgs}{"".join(_sections(rep))}
</body></html>"""
    path.write_text(page, encoding="utf-8")
