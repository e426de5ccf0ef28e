"""The run report: the key tables of a CometBFT run in one dict (for ``--json`` and the API), and their
rendering as terminal tables. What each section shows is described once, in
:mod:`.report_sections`, for this rendering and ``report.html`` alike; plots of the same
report are in :mod:`.plots`."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from bftscope.families.cometbft.analytics import answers, explain, peerids, topology
from bftscope.families.cometbft.analytics.report_sections import Line, sections
from bftscope.families.cometbft.analytics.restarts import restarts
from bftscope.families.cometbft.analytics.rollups import answer
from bftscope.store.base import Store

__all__ = ["build_report", "render_report"]


def build_report(store: Store, run_id: int) -> dict[str, Any]:
    """The report's tables, from the run's rollups (computed live for a run that has none)."""
    report = {name: answer(store, run_id, name) for name in _SECTIONS}
    report["links"] = answers.link_latency(store, run_id, by_type=False)
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


def render_report(out: Console, rep: dict[str, Any], *, top: int = 20) -> None:
    """Print the report's sections as terminal tables; a long table keeps its ``top`` most telling rows and says
    how many of how many. A section without data says which input would give it; statuses are defined at the end."""
    for s in sections(rep):
        if s.title and not s.header:  # a section of prose only: its title as a heading
            out.print(Text(s.title, style="bold"))
        for line in s.before:
            out.print(_line(line))
        if s.header:
            rows, title = s.rows, s.title or ""
            if s.limit is not None:
                rows = s.rows[:top]
                title += f", {s.limit}{len(rows)} of {len(s.rows)}"
            t = Table(title=Text(title, style="table.title"))
            for h in s.header:  # fold, not cut: a narrow terminal must not lose the end of an id or a number
                t.add_column(h, overflow="fold")
            for r in rows:  # plain Text: a file name or reason with brackets is not rich markup
                t.add_row(*(Text(c) for c in r))
            out.print(t)
        for line in s.after:
            out.print(_line(line))


def _line(line: Line) -> Text:
    if line.kind == "note":
        return Text(f"  {line.text}", style="italic")
    if line.kind == "warning":
        return Text(f"  {line.text}", style="yellow")
    return Text(line.text)
