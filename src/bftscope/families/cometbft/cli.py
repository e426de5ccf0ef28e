"""The CometBFT family's commands: ``report``, ``compare``, ``simulate``, ``demo``, ``missed``, ``replay`` and
``watch`` (added by :func:`register`)."""

from __future__ import annotations

import re
import tempfile
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from bftscope.analytics.summary import run_summary
from bftscope.cli import (
    AsJson,
    DataDir,
    _fail,
    _opened,
    _print_ingest,
    _print_json,
    _run_ingest,
    _settings,
    out,  # fmt: skip
)
from bftscope.errors import InputError
from bftscope.ingest import derived

__all__ = ["register"]


def _clock_offsets(specs: list[str]) -> dict[int, float]:
    """``node1=+40`` (or ``1=-25.5``) → {1: 40.0}: node index → clock offset in ms."""
    offsets: dict[int, float] = {}
    for spec in specs:
        m = re.fullmatch(r"\s*(?:node)?(\d+)\s*=\s*([+-]?\d+(?:\.\d*)?)\s*(?:ms)?\s*", spec)
        if m is None:
            raise ValueError(f"--clock-offset {spec!r}: expected NODE=MS, e.g. node1=+40 or node2=-25")
        offsets[int(m[1])] = offsets.get(int(m[1]), 0.0) + float(m[2])
    return offsets


def register(app: typer.Typer) -> None:
    from bftscope.families.cometbft.live.watch import register as register_watch
    from bftscope.families.cometbft.missed.cli import register as register_missed
    from bftscope.families.cometbft.replay.cli import register as register_replay
    from bftscope.families.cometbft.top.cli import register as register_top

    register_missed(app)
    register_replay(app)
    register_top(app)
    register_watch(app)

    @app.command("report")
    def report_cmd(
        run: Annotated[str, typer.Argument()],
        data_dir: DataDir = None,
        as_json: AsJson = False,
        plots: Annotated[
            Path | None, typer.Option("--plots", help="Write PNG plots and a self-contained report.html here.")
        ] = None,
    ) -> None:
        """Vote propagation matrix, slowest links, clock skew, node ranking, rounds, participation, proposers."""
        from bftscope.families.cometbft.analytics.report import build_report, render_report

        settings = _settings(data_dir)
        with _opened(settings) as store:
            rid = store.get_run(run).id
            derived.ensure_current(store, rid)  # a run an interrupted ingest left stale is repaired first
            report = build_report(store, rid)
            written: list[Path] = []
            if plots is not None:
                from bftscope.families.cometbft.analytics.plots import write_plots

                written = write_plots(store, rid, run, report, plots)
        if as_json:
            _print_json({**report, "plots": [str(p) for p in written]} if written else report)
            return
        render_report(out, report)
        for path in written:
            out.print(f"wrote {path}")

    @app.command("compare")
    def compare_cmd(
        run_a: Annotated[str, typer.Argument(help="The baseline run.")],
        run_b: Annotated[str, typer.Argument(help="The run to compare with it.")],
        data_dir: DataDir = None,
        as_json: AsJson = False,
    ) -> None:
        """Compare two runs measurement by measurement, with deltas and a plain verdict per notable change."""
        from bftscope.families.cometbft.analytics.compare import compare_runs

        settings = _settings(data_dir)
        with _opened(settings) as store:
            ids = store.get_run(run_a).id, store.get_run(run_b).id
            for rid in ids:
                derived.ensure_current(store, rid)
            result = compare_runs(store, *ids)
        if as_json:
            _print_json(result)
            return
        for verdict in result["verdicts"] or ["no notable change (every measurement moved by less than 20 % or 5 ms)"]:
            out.print(f"• {verdict}")
        t = Table("subject", "measure", run_a, run_b, "change", title="All measurements")
        for c in result["changes"]:
            t.add_row(c["subject"], c["measure"], f"{c['a']:,.1f}", f"{c['b']:,.1f}", f"{100 * c['ratio']:+.0f}%")
        out.print(t)

    @app.command("simulate")
    def simulate_cmd(
        out_dir: Annotated[Path, typer.Argument(help="Folder to write node*.log and ground_truth.json into.")],
        nodes: Annotated[int, typer.Option(min=2, max=200)] = 4,
        heights: Annotated[int, typer.Option(min=1)] = 50,
        seed: Annotated[int, typer.Option()] = 1,
        latency_ms: Annotated[float, typer.Option(help="Base one-way latency between nodes.")] = 50.0,
        spread_ms: Annotated[float, typer.Option(help="Per-pair spread added to the base latency.")] = 100.0,
        slow_node: Annotated[int | None, typer.Option(help="Give this node the misconfigured config.")] = None,
        silent: Annotated[list[int] | None, typer.Option(help="Validator that never votes (repeatable).")] = None,
        drop_rate: Annotated[float, typer.Option(min=0.0, max=1.0)] = 0.0,
        escalate: Annotated[
            list[int] | None, typer.Option(help="Height that needs a second round (repeatable).")
        ] = None,
        target_mb: Annotated[
            float | None, typer.Option(help="Keep adding heights until the logs reach this size.")
        ] = None,
        clock_offset: Annotated[
            list[str] | None,
            typer.Option(help="A node's clock offset in ms, e.g. node1=+40 (repeatable); kept in ground_truth.json."),
        ] = None,
    ) -> None:
        """Write a simulated CometBFT 1.x JSON debug log set with a known latency matrix."""
        from bftscope.families.cometbft.synthetic.network import build_config, simulate

        try:
            offsets = _clock_offsets(clock_offset or [])
            cfg = build_config(
                nodes=nodes, heights=heights, seed=seed, base_latency_ms=latency_ms, spread_ms=spread_ms,
                slow_node=slow_node, silent=silent or [], drop_rate=drop_rate, escalations=escalate or [],
                target_bytes=int(target_mb * 1e6) if target_mb else None, clock_offsets=offsets,
            )  # fmt: skip
        except ValueError as exc:
            raise _fail(InputError(str(exc))) from exc
        truth = simulate(cfg, out_dir)
        out.print(f"wrote {nodes} node logs and ground_truth.json to {out_dir} ({truth.summary()})")

    @app.command("demo")
    def demo_cmd(data_dir: DataDir = None) -> None:
        """Simulate a 4-node network with one misconfigured node, ingest it, print its summary."""
        from bftscope.families.cometbft.synthetic.network import build_config, simulate

        settings = _settings(data_dir)
        with tempfile.TemporaryDirectory(prefix="bftscope-demo-") as tmp:
            folder = Path(tmp) / "testnet"
            cfg = build_config(nodes=4, heights=40, seed=7, base_latency_ms=40.0, spread_ms=120.0, slow_node=0,
                               silent=[], drop_rate=0.0, escalations=[12], target_bytes=None)  # fmt: skip
            truth = simulate(cfg, folder)
            out.print(f"simulated a 4-node network into {folder} ({truth.summary()})")
            run = f"demo-{int(time.time())}"
            with _opened(settings) as store:
                result = _run_ingest(store, [folder], run, settings, None, quiet=False)
                summary = run_summary(store, run)
            _print_ingest(result, summary)
            out.print(
                f"\nstore: {settings.store_path}\nnext: bftscope report {run}    (latency matrix, skew, "
                f"slow nodes, extra rounds, participation)\n      bftscope events {run} --kind step --limit 20"
            )
