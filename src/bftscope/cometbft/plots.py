"""Plots of a run report: what a person would rather look at than read.

* ``latency-heatmap.png`` — vote propagation p50, signer (rows) × receiver (columns);
* ``heights.png`` — per height: time from the first node starting it to the last commit, with the
  heights that needed more than one round marked, and the spread of commit times across nodes;
* ``latency-distribution.png`` — vote propagation latency per signer (box plots, 1–99 % whiskers) and
  one-hop delivery latency per message type (histograms);
* ``report.html`` — one self-contained page (plots inlined) with the headline tables.

Rendering uses matplotlib's non-interactive Agg backend, so it works on a machine without a screen.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np

from bftscope.store.base import Store

__all__ = ["write_plots"]


def _heatmap(report: dict[str, Any], path: Path) -> None:
    rows = report["vote_matrix"]
    signers = sorted({r["signer"] for r in rows})
    receivers = sorted({r["receiver"] for r in rows} | set(signers))
    grid = np.full((len(signers), len(receivers)), np.nan)
    for r in rows:
        grid[signers.index(r["signer"]), receivers.index(r["receiver"])] = r["p50_ms"]
    size = max(4.0, 0.5 * len(receivers) + 2)
    fig, ax = plt.subplots(figsize=(size + 1.5, max(3.0, 0.5 * len(signers) + 2)))
    im = ax.imshow(grid, cmap="magma_r", aspect="auto")
    ax.set_xticks(range(len(receivers)), receivers, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(signers)), signers, fontsize=8)
    ax.set_xlabel("receiver")
    ax.set_ylabel("signer")
    ax.set_title("Vote propagation p50 (ms): signer's timestamp → first receipt")
    if len(receivers) <= 12:
        for (i, j), v in np.ndenumerate(grid):
            if not np.isnan(v):
                ax.text(j, i, f"{v:.0f}", ha="center", va="center", fontsize=7, color="tab:cyan")
    fig.colorbar(im, ax=ax, label="ms")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _heights(report: dict[str, Any], path: Path) -> None:
    hs = [h for h in report["heights"] if h["duration_ms"] is not None]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 5.5), sharex=True)
    x = [h["height"] for h in hs]
    colors = ["tab:red" if h["rounds"] > 1 else "tab:blue" for h in hs]
    top.bar(x, [h["duration_ms"] for h in hs], color=colors, width=0.9)
    top.set_ylabel("height duration (ms)")
    top.set_title("Per height: first node starting it → last commit (red: needed more than one round)")
    bottom.bar(x, [h["commit_spread_ms"] or 0 for h in hs], color="tab:gray", width=0.9)
    bottom.set_ylabel("commit spread (ms)")
    bottom.set_xlabel("height")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _distributions(store: Store, run_id: int, path: Path) -> None:
    labels = {n.node: n.label for n in store.nodes(run_id)}
    arrivals = store.query(
        "SELECT signer, latency_ns / 1e6 FROM vote_arrivals WHERE run_id = ? AND signer IS NOT NULL"
        " AND latency_ns IS NOT NULL",
        [run_id],
    )
    by_signer: dict[str, list[float]] = {}
    for signer, ms in arrivals:
        by_signer.setdefault(labels[signer], []).append(ms)
    hops = store.query(
        "SELECT msg_type, latency_ns / 1e6 FROM deliveries WHERE run_id = ? AND latency_ns IS NOT NULL"
        " USING SAMPLE 200000 ROWS",
        [run_id],
    )
    by_type: dict[str, list[float]] = {}
    for mtype, ms in hops:
        by_type.setdefault(mtype, []).append(ms)
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    names = sorted(by_signer)
    if names:
        left.boxplot([by_signer[n] for n in names], whis=(1, 99), showfliers=False)
        left.set_xticks(range(1, len(names) + 1), names, rotation=60, ha="right", fontsize=8)
    left.set_ylabel("ms")
    left.set_title("Vote propagation latency by signer")
    for mtype in sorted(by_type, key=lambda t: -len(by_type[t]))[:5]:
        values = np.asarray(by_type[mtype])
        lo, hi = np.percentile(values, [0.5, 99.5])
        right.hist(values[(values >= lo) & (values <= hi)], bins=60, alpha=0.55, label=f"{mtype} ({len(values):,})")
    right.set_xlabel("one-hop latency (ms, two clocks)")
    right.set_ylabel("deliveries")
    right.set_title("One-hop delivery latency by message type")
    if by_type:
        right.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _table(title: str, header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<h2>{html.escape(title)}</h2><table><tr>{head}</tr>{body}</table>"


def _html(run: str, report: dict[str, Any], images: list[Path], path: Path) -> None:
    imgs = "".join(
        f'<img alt="{html.escape(p.stem)}" src="data:image/png;base64,{base64.b64encode(p.read_bytes()).decode()}">'
        for p in images
    )

    def ms(v: float | None) -> str:
        return "-" if v is None else f"{v:,.1f}"

    ranking = [[r["rank"], r["node"], f"{r['median_lateness_ms']:+.1f}", f"{100 * r['late_share']:.0f}%"]
               for r in report["node_ranking"]]  # fmt: skip
    links = sorted(report["links"], key=lambda r: -(r["p50_ms"] or 0))[:20]
    slow = [[r["sender"], r["receiver"], r["sent"], r["received"], ms(r["p50_ms"]), ms(r["p95_ms"])] for r in links]
    part = [[c["label"], c["voted"], c["late"], c["nil"], c["missing"], c["edge_missing"]]
            for c in report["participation"]["validators"].values()]  # fmt: skip
    rounds = [[r["height"], r["round"], r["proposer"], r["reason"]] for r in report["extra_rounds"]]
    paths = [[r["signer"], r["receiver"], ms(r["p50_ms"]), r.get("path", "-")] for r in report["vote_matrix"]]
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>bftscope report: {html.escape(run)}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1300px}}img{{max-width:100%;margin:1em 0}}
table{{border-collapse:collapse;margin-bottom:1em}}td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}
th{{background:#eee}}</style></head><body><h1>bftscope report: {html.escape(run)}</h1>
<p>Topology: {html.escape(report["topology"]["description"])}</p>{imgs}
{_table("Vote propagation: one hop or relayed", ["signer", "receiver", "p50 ms", "path"], paths)}
{_table("Nodes slowing the network", ["rank", "node", "median lateness ms", "last to arrive"], ranking)}
{_table("Slowest one-hop links", ["sender", "receiver", "sent", "received", "p50 ms", "p95 ms"], slow)}
{_table("Participation", ["node", "voted", "late", "nil", "missing", "missing at capture edge"], part)}
{_table("Rounds of heights that needed more than one", ["height", "round", "proposer", "why"], rounds)}
</body></html>"""
    path.write_text(page, encoding="utf-8")


def write_plots(store: Store, run_id: int, run: str, report: dict[str, Any], out_dir: Path) -> list[Path]:
    """Write the PNG plots and ``report.html`` into ``out_dir`` (created if missing); returns the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    images = [out_dir / "latency-heatmap.png", out_dir / "heights.png", out_dir / "latency-distribution.png"]
    _heatmap(report, images[0])
    _heights(report, images[1])
    _distributions(store, run_id, images[2])
    page = out_dir / "report.html"
    _html(run, report, images, page)
    return [*images, page]
