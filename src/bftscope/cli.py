"""The ``bftscope`` command line: ``ingest``, ``runs``, ``events``, ``summary``, ``report``, ``compare``,
``rebuild``, ``delete``, ``serve``, ``users create``, ``simulate``, ``demo``.

Every command builds its :class:`Settings` once (``BFTSCOPE_*`` variables, ``--data-dir``),
prints tables for people and ``--json`` for programs, and exits non-zero with a one-line reason
when something is wrong (1: the request failed, 2: bad usage, 130: interrupted by Ctrl-C).
"""

from __future__ import annotations

import json
import shlex
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn
from rich.table import Table

from bftscope.analytics.summary import run_summary
from bftscope.config import Settings
from bftscope.errors import BftscopeError, InputError
from bftscope.families import registry
from bftscope.ingest import derived
from bftscope.ingest.pipeline import PHASES, IngestInterrupted, IngestResult, ingest
from bftscope.store import Store, open_store
from bftscope.store.eventquery import EventFilter, list_events
from bftscope.timeutil import format_ns

__all__ = ["app", "main"]

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Consensus observability for BFT blockchains: ingest CometBFT logs and WALs, ask questions.",
)
out = Console()
err = Console(stderr=True)

DataDir = Annotated[
    Path | None,
    typer.Option("--data-dir", help="Store folder (default: $BFTSCOPE_DATA_DIR or ~/.local/share/bftscope)."),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]


def _settings(data_dir: Path | None) -> Settings:
    return Settings(data_dir=data_dir) if data_dir is not None else Settings()


def _print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, default=str) + "\n")


def _fail(exc: BftscopeError) -> typer.Exit:
    err.print(f"[red]error:[/red] {escape(exc.message)}", soft_wrap=True)  # one line, whatever the terminal width
    return typer.Exit(1)


def _refuse_simulation_run(store: Store, run: str, action: str) -> None:
    from bftscope.control.simulations import refuse_simulation_run  # the API's records: only here

    refuse_simulation_run(store, run, action)


@contextmanager
def _opened(settings: Settings) -> Iterator[Store]:
    """The store for one command; a bftscope error becomes a one-line message and exit code 1."""
    try:
        store = open_store(settings)
        try:
            yield store
        finally:
            store.close()
    except BftscopeError as exc:
        raise _fail(exc) from None


# --- ingest ------------------------------------------------------------------------------------


def _run_ingest(
    store: Store, paths: list[Path], run: str, settings: Settings, workers: int | None, quiet: bool
) -> IngestResult:
    if quiet:
        return ingest(store, run, paths, settings, workers=workers)
    started = time.perf_counter()
    with Progress(
        TextColumn("[bold]{task.description}[/bold]"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TextColumn("{task.fields[lines_s]}"),
        TimeRemainingColumn(),
        console=err,
        transient=True,
    ) as bar:
        task = bar.add_task("ingest", total=None, lines_s="")

        def progress(done: int, total: int, lines: int) -> None:
            rate = lines / max(time.perf_counter() - started, 1e-6)
            bar.update(task, completed=done, total=total, lines_s=f"{rate:,.0f} lines/s")

        def phase(name: str) -> None:  # after parsing: the bar is full, say what runs now
            bar.update(task, description=f"ingest done; {name}", lines_s="")

        return ingest(store, run, paths, settings, progress=progress, workers=workers, on_phase=phase)


def _print_ingest(result: IngestResult, summary: dict[str, Any]) -> None:
    mb = result.bytes_total / 1e6
    out.print(
        f"[bold]{result.run}[/bold]: {result.events:,} events from {mb:,.1f} MB in {result.seconds:.2f} s"
        + (f" ({mb / result.seconds:,.1f} MB/s)" if result.seconds > 0 and mb > 0 else "")
    )
    if result.phases:
        out.print("  " + ", ".join(f"{PHASES.get(k, k)} {v:.2f} s" for k, v in result.phases.items()))
    files = Table("file", "format", "node", "status", "lines", "events", "skipped", title="Files")
    for f in result.files:
        r = f.report
        files.add_row(
            f.name, f.format or "-", f.node or "-", f.status + (f" ({f.reason})" if f.reason else ""),
            f"{r.lines:,}", f"{r.events:,}", f"{r.skipped_total:,}",
        )  # fmt: skip
    out.print(files)
    _print_summary(summary)
    for f in result.files:
        for w in f.report.warnings:
            err.print(f"[yellow]warning[/yellow] {f.name}: {w}")
        for ex in f.report.examples:
            err.print(f"[dim]skipped[/dim] {f.name}: {ex}")


def _print_summary(s: dict[str, Any]) -> None:
    tr, hr = s["time_range"], s["height_range"]
    out.print(f"run [bold]{s['run']}[/bold]: {s['events']:,} events, heights {hr['min']}–{hr['max']}, "
              f"{tr['from']} → {tr['to']}")  # fmt: skip
    nodes = Table("node", "label", "p2p id", "validator", "events", "heights", title="Nodes")
    for n in s["nodes"]:
        h = n["height_range"]
        nodes.add_row(str(n["node"]), n["label"], n["p2p_id"] or "-", n["validator"] or "-", f"{n['events']:,}",
                      f"{h['min']}–{h['max']}" if h else "-")  # fmt: skip
    out.print(nodes)
    for n in s["nodes"]:  # where each p2p id came from: inferred ids say so (families/cometbft/analytics/peerids.py)
        out.print(f"  {n['label']}: p2p id from " + ("; ".join(n["p2p_id_sources"]) or "nowhere (unknown)"))
        for c in n["identity_conflicts"]:
            err.print(f"[yellow]identity conflict[/yellow] {c}")
    kinds = Table("kind", "events", title="Events by kind")
    for k, c in s["events_by_kind"].items():
        kinds.add_row(k, f"{c:,}")
    out.print(kinds)
    if s["skipped"]:
        sk = Table("reason", "lines", title="Skipped")
        for reason, c in s["skipped"].items():
            sk.add_row(reason, f"{c:,}")
        out.print(sk)


@app.command("ingest")
def ingest_cmd(
    paths: Annotated[list[Path], typer.Argument(help="Log files, WAL files, .gz, node home folders, testnet folders.")],
    run: Annotated[str, typer.Option("--run", "-r", help="Run to add the events to (created if new).")],
    workers: Annotated[int | None, typer.Option(help="Parser processes (default: one per core).")] = None,
    data_dir: DataDir = None,
    as_json: AsJson = False,
) -> None:
    """Parse CometBFT/Tendermint logs and consensus WALs into a run."""
    settings = _settings(data_dir)
    try:
        with _opened(settings) as store:
            _refuse_simulation_run(store, run, "change")
            result = _run_ingest(store, paths, run, settings, workers, quiet=as_json)
            summary = run_summary(store, run)
    except KeyboardInterrupt as exc:
        # One line, not a traceback per process: what was kept, and how to finish.
        again = shlex.join(["bftscope", "ingest", *map(str, paths), "--run", run]
                           + (["--data-dir", str(data_dir)] if data_dir is not None else []))  # fmt: skip
        kept = (f"kept {exc.events:,} events of {exc.files} file{'s' if exc.files != 1 else ''}"
                if isinstance(exc, IngestInterrupted) else "nothing was written")  # fmt: skip
        err.print(f"interrupted: {kept}; run `{again}` again to finish", markup=False, highlight=False,
                  soft_wrap=True)  # fmt: skip
        raise typer.Exit(130) from None
    if as_json:
        _print_json({
            "run": result.run, "seconds": round(result.seconds, 3), "bytes": result.bytes_total,
            "phases": {k: round(v, 3) for k, v in result.phases.items()},
            "events": result.events, "skipped": result.skipped, "identities": result.identities,
            "files": [{"name": f.name, "format": f.format, "node": f.node, "status": f.status, "reason": f.reason,
                       "duplicate_of": f.duplicate_of, "start": f.start, "lines": f.report.lines,
                       "events": f.report.events, "skipped": dict(f.report.skipped),
                       "warnings": f.report.warnings, "examples": f.report.examples} for f in result.files],
            "summary": summary,
        })  # fmt: skip
    else:
        _print_ingest(result, summary)


# --- reading -----------------------------------------------------------------------------------


@app.command("runs")
def runs_cmd(data_dir: DataDir = None, as_json: AsJson = False) -> None:
    """List runs."""
    settings = _settings(data_dir)
    with _opened(settings) as store:
        runs = store.list_runs()
        for r in runs:
            # "stale": an ingest stopped before the derived tables and rollups were rebuilt; any reader
            # that needs them, the next ingest or `bftscope rebuild` brings them up to date.
            r["derived"] = "current" if r.pop("derived_version") == derived.current_version(r["chain"]) else "stale"
            r.update(registry.family(r["chain"]).run_counts(store, r["id"]))  # a family's own counts (Casper)
    if as_json:
        _print_json(runs)
        return
    t = Table("run", "chain", "nodes", "sources", "events", "derived", "created")
    for r in runs:
        events = f"{r['events']:,}" + (f" ({r['entities']:,} entities)" if "entities" in r else "")
        t.add_row(r["name"], r["chain"], str(r["nodes"]), str(r["sources"]), events, r["derived"],
                  r["created_at"])  # fmt: skip
    out.print(t)


@app.command("rebuild")
def rebuild_cmd(run: Annotated[str, typer.Argument()], data_dir: DataDir = None) -> None:
    """Rebuild a run's derived tables (vote arrivals, deliveries) and metric rollups from its events."""
    settings = _settings(data_dir)
    with _opened(settings) as store:
        rid = store.get_run(run).id
        t = time.perf_counter()
        with store.memory_limit(settings.ingest_derive_memory_limit):
            counts = derived.build(store, rid)
    out.print(f"rebuilt the derived tables and rollups of {run} in {time.perf_counter() - t:.2f} s: "
              + ", ".join(f"{k} {v:,}" for k, v in counts.items()))  # fmt: skip


@app.command("delete")
def delete_cmd(
    run: Annotated[str, typer.Argument()],
    yes: Annotated[bool, typer.Option("--yes", help="Confirm: the run's events and everything derived go.")] = False,
    data_dir: DataDir = None,
) -> None:
    """Delete a run with its nodes, sources, events, derived tables and rollups."""
    if not yes:
        err.print(f"refusing to delete run {run!r} without --yes", markup=False, highlight=False)
        raise typer.Exit(2)
    settings = _settings(data_dir)
    with _opened(settings) as store:
        r = store.get_run(run)
        _refuse_simulation_run(store, run, "delete")
        store.delete_run(r.id)
    out.print(f"deleted run {run}")


@app.command("summary")
def summary_cmd(run: Annotated[str, typer.Argument()], data_dir: DataDir = None, as_json: AsJson = False) -> None:
    """Show what a run holds: nodes, time and height range, events by kind, what was skipped."""
    settings = _settings(data_dir)
    with _opened(settings) as store:
        s = run_summary(store, run)
    _print_json(s) if as_json else _print_summary(s)


@app.command("events")
def events_cmd(
    run: Annotated[str, typer.Argument()],
    node: Annotated[list[str] | None, typer.Option("--node", "-n", help="Node label, p2p id or number.")] = None,
    kind: Annotated[list[str] | None, typer.Option("--kind", "-k", help="Event kind (repeatable).")] = None,
    min_height: Annotated[int | None, typer.Option("--from-height")] = None,
    max_height: Annotated[int | None, typer.Option("--to-height")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1_000_000)] = 50,
    data_dir: DataDir = None,
    as_json: AsJson = False,
) -> None:
    """Print a run's events in time order, filtered by node, kind and height range."""
    settings = _settings(data_dir)
    with _opened(settings) as store:
        r = store.get_run(run)
        known = store.nodes(r.id)
        labels = {n.node: n.label for n in known}
        wanted: list[int] = []
        for name in node or []:
            match = [n.node for n in known if name in (n.label, n.p2p_id, n.validator, str(n.node))]
            if not match:
                raise typer.BadParameter(f"no node {name!r} in run {run!r}; try `bftscope summary {run}`")
            wanted.extend(match)
        flt = EventFilter(nodes=wanted, kinds=kind or [], min_height=min_height, max_height=max_height)
        rows = list_events(store, r.id, flt, limit=limit)
    if as_json:
        for row in rows:
            row["node_label"] = labels.get(row["node"])
            row["time"] = format_ns(row["ts"])
            sys.stdout.write(json.dumps(row) + "\n")
        return
    t = Table("time", "node", "kind", "h/r", "step/type", "peer", "validator", "extra")
    for row in rows:
        hr = f"{row['height']}/{row['round']}" if row["height"] is not None else "-"
        what = row["step"] or row["msg_type"] or ""
        if row["vote_type"]:
            what += f" {row['vote_type']}"
        validator = row["validator"] or (f"#{row['validator_index']}" if row["validator_index"] is not None else "")
        t.add_row(format_ns(row["ts"])[11:26], labels.get(row["node"], "?"), row["kind"], hr, what,
                  (row["peer"] or "")[:12], validator[:12], row["extra"] or "")  # fmt: skip
    out.print(t)


# --- the chain families' own commands (report, compare, simulate, demo for CometBFT), here in the help ---

for _family in registry.families():
    _family.register_cli(app)


# --- users --------------------------------------------------------------------------------------

users_app = typer.Typer(no_args_is_help=True, help="API users (the server must be stopped: one writer per store).")
app.add_typer(users_app, name="users")


@users_app.command("create")
def users_create_cmd(
    name: Annotated[str, typer.Argument(help="Username: 3-30 letters or digits.")],
    email: Annotated[str | None, typer.Option(help="Email (default NAME@localhost.localdomain).")] = None,
    admin: Annotated[bool, typer.Option("--admin", help="Make the user an admin.")] = False,
    data_dir: DataDir = None,
) -> None:
    """Create an API user and print their token (shown once; only its hash is stored). Creating any user
    closes the anonymous first-user bootstrap of the API for good."""
    from bftscope.control import users

    with _opened(_settings(data_dir)) as store:
        try:
            user, token = users.create_user(store, name, email or f"{name}@localhost.localdomain", is_admin=admin)
        except BftscopeError as exc:
            details = exc.details.get("details")
            if details:
                exc = InputError("; ".join(details))
            raise _fail(exc) from None
    role = "admin" if user.is_admin else "user"
    out.print(f"created {role} {user.username} (id {user.id}); API token, shown once:")
    sys.stdout.write(token + "\n")


# --- simulation and demo -------------------------------------------------------------------------


@app.command("serve")
def serve_cmd(
    data_dir: DataDir = None,
    host: Annotated[str | None, typer.Option(help="Listen address (default BFTSCOPE_HOST or 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default BFTSCOPE_PORT or 8080).")] = None,
    workers: Annotated[
        int | None, typer.Option(help="Server processes (default BFTSCOPE_WORKERS, 1); the embedded store allows one.")
    ] = None,
    local: Annotated[bool, typer.Option("--local", help="No API tokens (loopback addresses only).")] = False,
) -> None:
    """Serve the HTTP API (OpenAPI at /openapi.json, docs at /docs) until interrupted; stopping finishes
    in-flight requests and processing jobs first."""
    import uvicorn

    from bftscope.api.app import check_bind, create_app

    settings = _settings(data_dir)
    if local:
        settings = settings.model_copy(update={"auth_mode": "local"})
    host = host or settings.host
    port = port or settings.port
    workers = workers or settings.workers
    try:
        if workers != 1:
            raise InputError("the embedded store has a single writer: run one worker")
        check_bind(settings, host)
        open_store(settings).close()  # held by another process: say so in one line, not from the lifespan
    except BftscopeError as exc:
        raise _fail(exc) from None
    import logging

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    for name in ("bftscope.access", "bftscope.api", "bftscope.jobs"):
        logging.getLogger(name).addHandler(handler)
        logging.getLogger(name).setLevel(logging.INFO)
    mode = "local mode, no tokens" if settings.auth_mode == "local" else "API tokens required"
    out.print(f"bftscope API on http://{host}:{port} ({mode}); docs at /docs; store {settings.store_path}")
    uvicorn.run(create_app(settings), host=host, port=port, server_header=False, proxy_headers=False,
                log_level="warning", timeout_graceful_shutdown=30)  # fmt: skip


def main() -> None:
    from bftscope import runtime

    runtime.apply()
    app()


if __name__ == "__main__":
    main()
