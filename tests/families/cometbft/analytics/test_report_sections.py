"""The text report and report.html show the same sections, in the same order, with the same cells and lines:
each rendering is read back (rich's table borders, html.parser) and compared with the other and with the one
description of the sections (analytics/report_sections.py) — on the real v0.34 run and on a run that read nothing
but logs (files that gave nothing, "no data: needs …" notes)."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from bftscope.config import Settings
from bftscope.families.cometbft.analytics.report import build_report, render_report
from bftscope.families.cometbft.analytics.report_html import write_html
from bftscope.families.cometbft.analytics.report_sections import Section, sections
from bftscope.ingest.pipeline import ingest
from bftscope.store import DuckDBStore
from tests.conftest import require_data
from tests.families.cometbft.parse.test_amino import _home

TOP = 5  # fewer than the v0.34 run's 12 links and 6 clock pairs: the terminal must cut, the page must not


@dataclass
class _Table:
    title: str
    header: list[str]
    rows: list[list[str]] = field(default_factory=list)


def _text_tables(text: str) -> tuple[list[_Table], list[str]]:
    """The tables of a rich rendering (title line, ┃ header, │ rows) and its other lines."""
    tables: list[_Table] = []
    prose: list[str] = []
    lines = [x.rstrip() for x in text.splitlines()]
    for i, line in enumerate(lines):
        if line.startswith("┏"):  # the title above, wrapped to the table's width: its lines centred on it
            title: list[str] = []
            while prose and _centred(prose[-1], len(line)):
                title.insert(0, prose.pop().strip())
            tables.append(_Table(" ".join(title), [c.strip() for c in lines[i + 1].strip("┃").split("┃")]))
        elif line.startswith("│"):
            tables[-1].rows.append([c.strip() for c in line.strip("│").split("│")])
        elif line and line[0] not in "┃┡└":
            prose.append(line)
    return tables, prose


def _centred(line: str, width: int) -> bool:
    text = line.strip()
    return abs(len(line) - len(line.lstrip()) - (width - len(text)) / 2) <= 1


class _Page(HTMLParser):
    """The h2 titles, tables (header, rows) and paragraphs of report.html, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.items: list[tuple[str, Any]] = []
        self._text: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self.items.append(("table", []))
        elif tag == "tr":
            self.items[-1][1].append([])
        elif tag in ("h2", "p", "td", "th"):
            self._text = []

    def handle_data(self, data: str) -> None:
        if self._text is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._text is not None:
            self.items[-1][1][-1].append("".join(self._text))
        elif tag in ("h2", "p") and self._text is not None:
            self.items.append((tag, "".join(self._text)))
        if tag in ("h2", "p", "td", "th"):
            self._text = None


def _expected_page(secs: list[Section]) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for s in secs:
        out += [("h2", s.title)] if s.title else []
        out += [("p", x.text) for x in s.before]
        if s.header:
            out.append(("table", [s.header, *s.rows]))
        if s.header and not s.rows and not s.after:
            out.append(("p", "none"))
        out += [("p", x.text) for x in s.after]
    return out


def _check(rep: dict[str, Any], path: Path) -> tuple[list[_Table], list[tuple[str, Any]]]:
    """Both renderings of ``rep`` against its sections and each other; returns what was read back."""
    secs = sections(rep)
    console = Console(record=True, width=1000, file=io.StringIO())  # wide enough that no cell wraps
    render_report(console, rep, top=TOP)
    tables, prose = _text_tables(console.export_text())
    write_html("r", rep, [], path)
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    assert page.items == _expected_page(secs)

    # The terminal: the same tables in the same order, long ones cut to their first TOP rows and saying so.
    with_table = [s for s in secs if s.header]
    assert len(tables) == len(with_table)
    html_tables = [rows for kind, rows in page.items if kind == "table"]
    for t, s, shown in zip(tables, with_table, html_tables, strict=True):
        assert s.title is not None and t.title.startswith(s.title) and t.header == s.header
        if s.limit is not None:
            assert t.title == f"{s.title}, {s.limit}{min(TOP, len(s.rows))} of {len(s.rows)}"
        assert t.rows == (s.rows[:TOP] if s.limit is not None else s.rows)
        # every cell the terminal shows is on the page, in the same place; the page has all rows
        assert shown[0] == t.header and shown[1 : len(t.rows) + 1] == t.rows and len(shown) == len(s.rows) + 1
    # Every line around the tables, in the same order (notes and warnings indented), and prose-only titles.
    expected = []
    for s in secs:
        expected += [s.title] if s.title and not s.header else []
        expected += [("  " if x.kind != "text" else "") + x.text for x in s.before + s.after]
    assert prose == expected
    return tables, page.items


@pytest.fixture(scope="module")
def v034_report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("v034") / "store")
    store = DuckDBStore.open(settings.store_path, settings)
    ingest(store, "v034", [require_data("cometbft/tendermint-v0.34-4node-wal")], settings)
    rep = build_report(store, store.get_run("v034").id)
    store.close()
    return rep


def test_real_run_says_the_same_in_text_and_page(v034_report: dict[str, Any], tmp_path: Path) -> None:
    tables, items = _check(v034_report, tmp_path / "report.html")
    titles = [x for kind, x in items if kind == "h2"]
    assert titles == ["Nodes", "Vote propagation (signer's timestamp → first receipt)",
                      "Slowest one-hop links (receiver clock − sender clock)",
                      "Clock skew (from minimum one-way delays; 'not determinable' where path asymmetry could "
                      "explain it)", "Clock offset per node, relative to node2",
                      "Nodes slowing the network (how late their votes arrive vs. the median signer)", "Heights",
                      "Restarts", "Rounds of heights that needed more than one", "Participation", "Proposers",
                      "Definitions"]  # fmt: skip
    by_title = {t.title.split(",")[0].split(" (")[0]: t for t in tables}
    # the columns the page used to lack, and the rows the terminal cuts
    assert "p50 skew-corrected ms" in by_title["Slowest one-hop links"].header
    assert by_title["Slowest one-hop links"].title.endswith(f", {TOP} of 12")
    assert by_title["Clock skew"].title.endswith(f", largest {TOP} of 6")
    assert [r[-1] for r in by_title["Clock offset per node"].rows] == [
        "node2 → node0", "node2 → node3 → node1", "node2", "node2 → node3"]  # fmt: skip
    assert [r[0] for r in by_title["Nodes"].rows] == ["node0", "node1", "node2", "node3"]
    page_text = [x for kind, x in items if kind == "p"]
    assert any(x.startswith("Topology: full mesh") for x in page_text)
    assert "77 heights, 0 needed more than one round" in page_text
    assert any(x.startswith("all 4 nodes tie on median lateness") for x in page_text)
    assert any(x.startswith("designated proposer not known: needs") for x in page_text)
    assert "designated" not in by_title["Proposers"].header


def test_a_run_of_logs_only_says_the_same_in_text_and_page(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "store")
    store = DuckDBStore.open(settings.store_path, settings)
    ingest(store, "old", [_home(tmp_path, with_log=True)], settings)
    rep = build_report(store, store.get_run("old").id)
    store.close()
    tables, items = _check(rep, tmp_path / "report.html")
    assert tables[1].title == "Files that gave nothing" and tables[1].rows[0][-1].startswith("Tendermint ≤ 0.33 amino")
    notes = [x for kind, x in items if kind == "p" and x.startswith("no data: needs")]
    assert len(notes) == len([k for k in rep["no_data"] if k != "designated"]) > 0
