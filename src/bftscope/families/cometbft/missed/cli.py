"""``bftscope missed NAME``: a run's missed votes (an uploaded run, or a followed network's run, which has the
network's name) — per-validator totals, streaks and uptime, then the votes that were not ``voted``."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from bftscope.cli import AsJson, DataDir, _fail, _opened, _print_json, _settings, out
from bftscope.errors import InputError
from bftscope.ingest import derived

__all__ = ["register"]

_NOT_VOTED = ("late", "nil", "absent", "unknown")


def _streak(s: dict[str, Any] | None) -> str:
    return "—" if s is None else f"{s['length']} ({s['from']}-{s['to']})"


def _uptime(u: dict[str, Any]) -> str:
    if u["uptime"] is None:
        return "—"
    return f"{100 * u['uptime']:.1f}% ({u['signed'] + u['missed']})"


def _print_tables(rows: list[dict[str, Any]], summary: list[dict[str, Any]], labels: dict[str, str],
                  statuses: list[str], limit: int) -> None:  # fmt: skip
    t = Table(title="Votes per validator (prevotes + precommits)")
    t.add_column("validator", no_wrap=True)
    for name in ("power", "voted", "late", "nil", "absent", "unknown", "solo"):
        t.add_column(name, justify="right")
    for name in ("max streak", "streak now", "uptime (blocks)"):
        t.add_column(name)
    for s in summary:
        c = {k: s["counts"]["prevote"][k] + s["counts"]["precommit"][k] for k in s["counts"]["prevote"]}
        t.add_row(labels.get(s["validator"], s["validator"][:12]), "?" if s["power"] is None else str(s["power"]),
                  *(str(c[k]) for k in ("voted", "late", "nil", "absent", "unknown")), str(s["solo"]),
                  _streak(s["longest_streak"]), _streak(s["current_streak"]), _uptime(s["uptime"]))  # fmt: skip
    out.print(t)
    shown = [r for r in rows if r["status"] in statuses]
    if not shown:
        out.print(f"no {' / '.join(statuses)} votes")
        return
    t = Table("height", "round", "validator", "type", "status", "solo", title=f"{' / '.join(statuses)} votes")
    for r in shown[:limit]:
        t.add_row(str(r["height"]), str(r["round"]), labels.get(r["validator"], r["validator"][:12]), r["type"],
                  r["status"], "yes" if r["solo"] else "")  # fmt: skip
    out.print(t)
    if len(shown) > limit:
        out.print(f"… {len(shown) - limit} more (--limit, or --json for every row)")


def register(app: typer.Typer) -> None:
    @app.command("missed")
    def missed_cmd(
        name: Annotated[str, typer.Argument(help="The run (a followed network's run has the network's name).")],
        data_dir: DataDir = None,
        as_json: AsJson = False,
        from_height: Annotated[int | None, typer.Option("--from", help="First height.")] = None,
        to_height: Annotated[int | None, typer.Option("--to", help="Last height.")] = None,
        validator: Annotated[
            list[str] | None, typer.Option("--validator", help="Only this validator address (repeatable).")
        ] = None,
        status: Annotated[
            list[str] | None,
            typer.Option("--status", help="Only votes of this status (repeatable): voted, late, nil, absent, unknown."),
        ] = None,
        window: Annotated[int, typer.Option(help="Uptime over this many last committed heights.", min=1)] = 100,
        limit: Annotated[int, typer.Option(help="Vote rows shown in the table.", min=0)] = 50,
    ) -> None:
        """Missed votes per height, round and validator: voted / late / nil / absent / unknown (docs/live.md)."""
        from bftscope.families.cometbft.missed.answer import DEFAULT_SPAN, check_filters, default_range
        from bftscope.families.cometbft.missed.summary import summarize
        from bftscope.families.cometbft.missed.votes import missed

        try:
            vals, stats = check_filters(from_height, to_height, validator, status)
        except InputError as exc:
            raise _fail(exc) from exc
        settings = _settings(data_dir)
        with _opened(settings) as store:
            rid = store.get_run(name).id
            derived.ensure_current(store, rid)  # sets and priorities are derived: a stale run is repaired first
            lo, hi = default_range(store, rid, from_height, to_height)
            rows = missed(store, rid, from_height=lo, to_height=hi, validators=vals)
            labels = {n.validator: n.label for n in store.nodes(rid) if n.validator}
        if as_json:
            _print_json([r for r in rows if not stats or r["status"] in stats])
            return
        if lo is not None and from_height is None:
            out.print(f"heights {lo}– (the last {DEFAULT_SPAN:,}; --from/--to for others)")
        _print_tables(rows, summarize(rows, window=window), labels, stats or list(_NOT_VOTED), limit)
