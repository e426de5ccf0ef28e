"""Plots of a run report: what a person would rather look at than read.

* ``latency-heatmap.png`` — vote propagation p50, signer (rows) × receiver (columns);
* ``heights.png`` — per height: time from the first node starting it to the last commit, with the
  heights that needed more than one round marked, and the spread of commit times across nodes;
* ``latency-distribution.png`` — vote propagation latency per signer (box plots, 1–99 % whiskers) and
  one-hop delivery latency per message type (histograms);
* ``report.html`` — one self-contained page (plots inlined) with everything the text report has
  (:mod:`.report_html`).

Empty panels say "no data" and which input would fill them.

Rendering uses matplotlib's non-interactive Agg backend, so it works on a machine without a screen.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np

from bftscope.families.cometbft.analytics.explain import NEEDS
from bftscope.families.cometbft.analytics.report_html import write_html
from bftscope.store.base import Store

__all__ = ["write_plots"]


def _natural(label: str) -> tuple[Any, ...]:
    """``node2`` before ``node10``."""
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", label))


def _no_data(ax: Any, why: str) -> None:
    """An empty panel says so, and what would fill it, instead of showing bare axes."""
    ax.text(0.5, 0.5, "no data\n" + textwrap.fill(why, 60), ha="center", va="center", fontsize=9, color="0.3",
            transform=ax.transAxes)  # fmt: skip
    ax.set_xticks([])
    ax.set_yticks([])


def _text_colour(rgba: Any) -> str:
    """Black on light cells, white on dark ones (relative luminance, sRGB weights)."""
    r, g, b = rgba[:3]
    return "black" if 0.2126 * r + 0.7152 * g + 0.0722 * b > 0.45 else "white"


def _heatmap(report: dict[str, Any], path: Path) -> None:
    rows = report["vote_matrix"]
    if not rows:
        fig, ax = plt.subplots(figsize=(6, 3))
        ax.set_title("Vote propagation p50 (ms): signer's timestamp → first receipt")
        _no_data(ax, "needs " + NEEDS["vote_matrix"])
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return
    signers = sorted({r["signer"] for r in rows}, key=_natural)
    receivers = sorted({r["receiver"] for r in rows} | set(signers), key=_natural)
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
                colour = _text_colour(im.cmap(im.norm(v)))
                ax.text(j, i, f"{v:.0f}", ha="center", va="center", fontsize=8, color=colour)
    fig.colorbar(im, ax=ax, label="ms")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _clip_at(values: list[float]) -> float | None:
    """A y limit that keeps ordinary bars readable when a few are outliers (None: no outliers)."""
    if len(values) < 5:
        return None
    p90 = float(np.percentile(values, 90))
    top = max(values)
    return 2.0 * p90 if p90 > 0 and top > 3.0 * p90 else None


def _heights(report: dict[str, Any], path: Path) -> None:
    hs = [h for h in report["heights"] if h["duration_ms"] is not None]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 5.5), sharex=True)
    top.set_title("Per height: first node starting it → last commit (red: needed more than one round)")
    if not hs:
        _no_data(top, "needs " + NEEDS["heights"])
        _no_data(bottom, "commit spread: needs commits of several nodes")
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return
    x = [h["height"] for h in hs]
    durations = [h["duration_ms"] for h in hs]
    colors = ["tab:red" if h["rounds"] > 1 else "tab:blue" for h in hs]
    top.bar(x, durations, color=colors, width=0.9)
    top.set_ylabel("height duration (ms)")
    clip = _clip_at(durations)
    if clip is not None:  # outliers: cut the axis and write their values on them
        top.set_ylim(0, clip)
        for h, d in zip(x, durations, strict=True):
            if d > clip:
                top.annotate(f"{d / 1e3:,.1f} s ▲", (h, clip), xytext=(0, -2), textcoords="offset points",
                             ha="center", va="top", fontsize=7, rotation=90, color="white")  # fmt: skip
        top.set_title(top.get_title() + f"\naxis cut at {clip:,.0f} ms; taller bars are labelled", fontsize=10)
    for h in hs:
        if h.get("restarts"):
            top.axvline(h["height"], color="tab:orange", linestyle="--", linewidth=1)
            top.annotate(f"restart: {', '.join(h['restarts'])}", (h["height"], top.get_ylim()[1]), xytext=(3, -3),
                         textcoords="offset points", ha="left", va="top", fontsize=7, color="tab:orange")  # fmt: skip
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
        + store.dialect.sample_rows(200_000),
        [run_id],
    )
    by_type: dict[str, list[float]] = {}
    for mtype, ms in hops:
        by_type.setdefault(mtype, []).append(ms)
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    names = sorted(by_signer, key=_natural)
    if names:
        left.boxplot([by_signer[n] for n in names], whis=(1, 99), showfliers=False)
        left.set_xticks(range(1, len(names) + 1), names, rotation=60, ha="right", fontsize=8)
    else:
        _no_data(left, "needs " + NEEDS["vote_matrix"])
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
    else:
        _no_data(right, "needs " + NEEDS["links"])
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_plots(store: Store, run_id: int, run: str, report: dict[str, Any], out_dir: Path) -> list[Path]:
    """Write the PNG plots and ``report.html`` into ``out_dir`` (created if missing); returns the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    images = [out_dir / "latency-heatmap.png", out_dir / "heights.png", out_dir / "latency-distribution.png"]
    _heatmap(report, images[0])
    _heights(report, images[1])
    _distributions(store, run_id, images[2])
    page = out_dir / "report.html"
    write_html(run, report, images, page)
    return [*images, page]
