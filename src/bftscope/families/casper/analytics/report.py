"""The Casper report: every answer of a followed network over one window in one dict (``--json`` and the
API's answers are these sections), and its rendering as terminal tables (``bftscope casper report``)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from bftscope.families.casper.analytics.blocktimes import block_times
from bftscope.families.casper.analytics.deploys import deploys
from bftscope.families.casper.analytics.eras import eras
from bftscope.families.casper.analytics.proposers import proposers
from bftscope.families.casper.analytics.signatures import signatures
from bftscope.families.casper.analytics.window import Window
from bftscope.store.base import Store

__all__ = ["build_report", "render_report"]


def build_report(store: Store, run_id: int, window: Window, *, by_account: bool = False) -> dict[str, Any]:
    return {"window": window.describe(), "blocktimes": block_times(store, run_id, window),
            "eras": eras(store, run_id, window), "proposers": proposers(store, run_id, window),
            "signatures": signatures(store, run_id, window),
            "deploys": deploys(store, run_id, window, by_account=by_account)}  # fmt: skip


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f}"


def _num(value: float | None, fmt: str = "{:+.2f}") -> str:
    return "-" if value is None else fmt.format(value)


def _key(key: str | None) -> str:
    """A public key shortened for a terminal column (the JSON keeps it whole)."""
    return "-" if key is None else key if len(key) <= 12 else f"{key[:6]}…{key[-4:]}"


def _stats_cells(s: dict[str, Any]) -> list[str]:
    return [f"{s['count']:,}", _ms(s["p50_ms"]), _ms(s["p90_ms"]), _ms(s["p99_ms"]), _ms(s["mean_ms"]),
            _ms(s["max_ms"])]  # fmt: skip


_STATS = ("n", "p50 ms", "p90 ms", "p99 ms", "mean ms", "max ms")


def render_report(out: Console, report: dict[str, Any]) -> None:
    bt = report["blocktimes"]
    out.print(f"[bold]blocks[/bold] {bt['blocks']:,} (heights {bt['first_height']}–{bt['last_height']}, "
              f"{bt['missing_heights']:,} missing)")  # fmt: skip
    t = Table("", *_STATS, title="Block times (interval between consecutive heights)")
    t.add_row("all", *_stats_cells(bt["intervals"]))
    out.print(t)
    t = Table("era", "heights", "blocks", "gaps", "min", "p50 ms", "end", "vals", "faults", "equiv",
              title="Eras (gaps: heights missing; min: duration; vals: validators with weight; equiv: equivocators)")
    for e in report["eras"]:
        t.add_row(str(e["era_id"]), f"{e['first_height']}–{e['last_height']}", str(e["blocks"]),
                  str(e["missing_heights"]), f"{e['duration_ms'] / 60_000:,.1f}", _ms(e["intervals"]["p50_ms"]),
                  "yes" if e["era_end"] else "no",
                  "?" if e["validator_count"] is None else str(e["validator_count"]), str(e["faults"]),
                  "-" if e["equivocator_count"] is None else str(e["equivocator_count"]))  # fmt: skip
    out.print(t)
    pr = report["proposers"]["overall"]
    t = Table("validator", "proposed", "share", "weight share", "difference", "z", "p", title=(
        f"Proposer share against weight ({pr['blocks']:,} blocks of eras with known weights; "
        f"{pr['blocks_without_weights']:,} without)"))  # fmt: skip
    for r in pr["validators"]:
        t.add_row(_key(r["validator"]), str(r["proposed"]), _num(r["proposed_share"], "{:.3f}"),
                  _num(r["weight_share"], "{:.3f}"), _num(r["difference"], "{:+.3f}"), _num(r["z"]),
                  _num(r["p_value"], "{:.3g}"))  # fmt: skip
    out.print(t)
    sg = report["signatures"]
    t = Table("validator", "node", "sigs", *_STATS[1:4], "early", "missing", title=(
        f"Finality-signature delay after the block's first sight ({sg['blocks']:,} blocks; early: before the "
        "block; missing: of those due)"))  # fmt: skip
    for r in [*sg["validators"], *sg["per_node"]]:
        d = r["delay"]
        t.add_row(_key(r["validator"]), r["node"] or "all", str(r["signatures"]), _ms(d["p50_ms"]),
                  _ms(d["p90_ms"]), _ms(d["p99_ms"]), str(r["before_block"]),
                  "-" if r["missing"] is None else f"{r['missing']}/{r['due']}")  # fmt: skip
    out.print(t)
    dp = report["deploys"]
    out.print(f"[bold]deploys[/bold] accepted {dp['accepted']:,}, processed {dp['processed']:,}, failed "
              f"{dp['failed']:,}, expired {dp['expired']:,}, pending {dp['pending']:,}")  # fmt: skip
    t = Table("latency", *_STATS, title="Deploy latency (inclusion: block − deploy timestamp; receipt: processed − "
              "accepted, as received here)")
    t.add_row("inclusion", *_stats_cells(dp["inclusion"]))
    t.add_row("receipt", *_stats_cells(dp["receipt"]))
    out.print(t)
    if dp.get("accounts"):
        t = Table("account", "processed", "failed", "p50 ms", "p99 ms", title="Deploys per account")
        for a in dp["accounts"]:
            t.add_row(_key(a["account"]), str(a["processed"]), str(a["failed"]), _ms(a["inclusion"]["p50_ms"]),
                      _ms(a["inclusion"]["p99_ms"]))  # fmt: skip
        out.print(t)
