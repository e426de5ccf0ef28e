"""The report as an operator sees it: report.html carries what the text report says, ties and unknowns are
explained, plots stay readable."""

from __future__ import annotations

import html
from pathlib import Path

import matplotlib
import pytest
from rich.console import Console

from bftscope.config import Settings
from bftscope.families.cometbft.analytics import plots
from bftscope.families.cometbft.analytics.explain import DEFINITIONS
from bftscope.families.cometbft.analytics.report import build_report, render_report
from bftscope.ingest.pipeline import ingest
from bftscope.store import DuckDBStore
from tests.conftest import require_data


@pytest.fixture(scope="module")
def v034(tmp_path_factory: pytest.TempPathFactory) -> tuple[DuckDBStore, int, Path]:
    root = tmp_path_factory.mktemp("v034")
    settings = Settings(data_dir=root / "store")
    store = DuckDBStore.open(settings.store_path, settings)
    ingest(store, "v034", [require_data("cometbft/tendermint-v0.34-4node-wal")], settings)
    return store, store.get_run("v034").id, root


def test_text_and_html_say_the_same(v034: tuple[DuckDBStore, int, Path]) -> None:
    store, rid, root = v034
    rep = build_report(store, rid)
    console = Console(record=True, width=400)
    render_report(console, rep)
    text = console.export_text()
    plots.write_plots(store, rid, "v034", rep, root / "plots")
    page = (root / "plots" / "report.html").read_text(encoding="utf-8")
    for title in ("Vote propagation", "Slowest one-hop links", "Clock skew", "Nodes slowing the network",
                  "Restarts", "Participation", "Proposers", "Definitions", "77 heights, 0 needed more than one round",
                  "every node was down during height 50"):  # fmt: skip
        assert title in text and title in page, title
    for term, meaning in DEFINITIONS.items():
        assert term in text and html.escape(meaning) in page
    # The four validators tie on median lateness: the report says so and what it ranked by instead.
    assert "tie on median lateness" in text and "tie on median lateness" in page
    shares = [r["late_share"] for r in rep["node_ranking"]]
    assert shares == sorted(shares, reverse=True)
    # The WAL-only v0.34 run names no designated proposer: no column of zeros, a note instead.
    assert all(p["designated"] is None for p in rep["proposers"])
    assert "<th>designated</th>" not in page and "designated proposer not known" in page
    assert "designated proposer not known" in text


def test_heatmap_numbers_contrast_with_their_cell() -> None:
    cmap = matplotlib.colormaps["magma_r"]
    assert plots._text_colour(cmap(0.0)) == "black"  # palest cell
    assert plots._text_colour(cmap(1.0)) == "white"  # darkest cell


def test_one_outlier_height_does_not_flatten_the_others() -> None:
    ordinary = [1400.0 + 10 * i for i in range(30)]
    clip = plots._clip_at([*ordinary, 51_000.0])
    assert clip is not None and max(ordinary) < clip < 51_000
    assert plots._clip_at(ordinary) is None


def test_plots_of_a_run_without_votes_say_no_data(tmp_path: Path) -> None:
    log = tmp_path / "node.log"
    log.write_text("I[2023-04-13|10:10:01.000] Executed block" + " " * 33 + "module=state height=5 validTxs=0\n",
                   encoding="utf-8")  # fmt: skip
    settings = Settings(data_dir=tmp_path / "store")
    store = DuckDBStore.open(settings.store_path, settings)
    ingest(store, "thin", [log], settings)
    rid = store.get_run("thin").id
    rep = build_report(store, rid)
    written = plots.write_plots(store, rid, "thin", rep, tmp_path / "plots")
    assert all(p.stat().st_size > 0 for p in written)
    page = (tmp_path / "plots" / "report.html").read_text(encoding="utf-8")
    for section in ("vote_matrix", "heights", "participation", "proposers"):
        assert html.escape(rep["no_data"][section]) in page
    store.close()
