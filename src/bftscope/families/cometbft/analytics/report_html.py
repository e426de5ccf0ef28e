"""``report.html``: the whole run report on one self-contained page (plots inlined), for people who would
rather open a file than read a terminal.

It lays out the sections of :mod:`.report_sections` — the same ones, in the same order,
with the same cells as the text report — so the page and the terminal cannot say different things. Unlike
the terminal it shows long tables whole.
"""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path
from typing import Any

from bftscope.families.cometbft.analytics.report_sections import Line, Section, sections

__all__ = ["write_html"]


def _line(line: Line) -> str:
    cls = {"text": "", "note": ' class="note"', "warning": ' class="warning"'}[line.kind]
    return f"<p{cls}>{html.escape(line.text)}</p>"


# a number, percentage, interval, range or timestamp ("-" for none): right-aligned and unbroken, so that
# columns of them line up
_NUMERIC = re.compile(r"[-+\d.,%\[\] …]+|\d{4}-\d\d-\d\dT[\d:.]+Z")


def _cell(c: str) -> str:
    cls = ' class="num"' if _NUMERIC.fullmatch(c) else ""
    return f"<td{cls}>{html.escape(c)}</td>"


def _section(s: Section) -> str:
    out = [f"<h2>{html.escape(s.title)}</h2>"] if s.title else []
    out += [_line(x) for x in s.before]
    if s.header:
        head = "".join(f"<th>{html.escape(h)}</th>" for h in s.header)
        body = "".join("<tr>" + "".join(_cell(c) for c in r) + "</tr>" for r in s.rows)
        out.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        if not s.rows and not s.after:  # an empty table without a note saying why: say it is empty, not broken
            out.append('<p class="note">none</p>')
    out += [_line(x) for x in s.after]
    return "".join(out)


_STYLE = """body{font-family:sans-serif;margin:2em;max-width:1300px} img{max-width:100%;margin:1em 0}
table{border-collapse:collapse;margin-bottom:1em}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:top}
td.num{text-align:right;white-space:nowrap} th{background:#eee}
.note{font-style:italic;color:#555} .warning{color:#a60}"""


def write_html(run: str, rep: dict[str, Any], images: list[Path], path: Path) -> None:
    """Write the page for ``rep`` (a :func:`.report.build_report` dict) with ``images``."""
    imgs = "".join(
        f'<img alt="{html.escape(p.stem)}" src="data:image/png;base64,{base64.b64encode(p.read_bytes()).decode()}">'
        for p in images
    )
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>bftscope report: {html.escape(run)}</title>
<style>{_STYLE}</style></head><body>
<h1>bftscope report: {html.escape(run)}</h1>{imgs}{"".join(_section(s) for s in sections(rep))}
</body></html>"""
    path.write_text(page, encoding="utf-8")
