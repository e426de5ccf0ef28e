"""``bftscope watch NAME --rpc URL [--rpc URL …]``: follow a CometBFT network into run NAME of the embedded store.

A progress line (height/round/step, events/s, the active endpoint's state) until Ctrl-C (or SIGTERM, or
``--until-height``), then a one-line summary. Watching a run again resumes it: what it already holds is not
written twice, and the time and heights it was not followed become an observation gap, backfilled like any other.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

import typer

from bftscope.cli import DataDir, _fail, _opened, _settings, err, out  # imported by the cli's own registration
from bftscope.errors import InputError
from bftscope.families import registry
from bftscope.families.cometbft.live.endpoint import parse_endpoint
from bftscope.families.cometbft.live.follower import NetworkFollower, NetworkStatus
from bftscope.families.cometbft.live.resume import resume_state
from bftscope.families.cometbft.live.valsets import record_validator_set
from bftscope.families.cometbft.missed.votes import missed
from bftscope.ingest.livesink import StoreSink
from bftscope.live.alerts import AlertEngine, AlertEvent, defaults, parse_options
from bftscope.live.alertsinks import LogSink
from bftscope.live.endpoints import redact_text
from bftscope.live.following import alert_sinks
from bftscope.live.stopsignals import stop_on_signals
from bftscope.live.supervisor import observe

__all__ = ["register", "summary_line"]

ALERT_HELP = ("An alert threshold KEY=VALUE (repeatable; a number or 'off'): missedVotes, uptimePercent, uptimeWindow, "
              "stalledSeconds, roundEscalation, endpointDownSeconds (docs/live.md, Alerts).")
RPC_HELP = "An RPC endpoint, e.g. http://host:26657 (repeatable: failover in the order given)."
CASPER = "casper"  # the family that follows --casper URLs (its watch: docs/casper.md, Followers)
CASPER_HELP = ("A Casper node's SSE server, e.g. http://host:9999, or a URL ending in /events for the legacy "
               "stream (repeatable: several nodes at once). Instead of --rpc.")
def summary_line(name: str, s: NetworkStatus, seconds: float) -> str:
    endpoints = ", ".join(
        f"{e.label} {e.frames} frames {e.reconnects} reconnects {e.errors} errors" for e in s.endpoints
    )
    return (
        f"{name}: {s.events_total:,} events in {seconds:.1f} s, committed height {s.committed}, {s.gaps} gaps "
        f"({s.backfilled_heights} heights backfilled, {s.not_refilled_heights} not), {s.duplicates} duplicates "
        f"dropped, {s.validator_sets} validator sets; {endpoints}"
    )


def _progress(s: NetworkStatus, rate: float) -> str:
    active = next((e for e in s.endpoints if e.active), None)
    where = f"{active.label} live" if active else "no endpoint live (" + ", ".join(
        f"{e.label} {e.state}" for e in s.endpoints) + ")"  # fmt: skip
    hrs = f"{s.height}/{s.round}/{s.step}" if s.height is not None else "waiting for the first event"
    return f"height {hrs} · committed {s.committed} · {rate:,.1f} events/s · {where} · gaps {s.gaps}"


class _Printed:
    """Alerts of a watch on stderr, one line each (the log and the webhook are the server's sinks)."""

    def deliver(self, event: AlertEvent) -> None:
        state = "[red]ALERT[/red]" if event.active else "[green]cleared[/green]"
        err.print(f"{state} {event.rule} {event.subject}: {redact_text(event.message)}", soft_wrap=True)


async def _watch(follower: NetworkFollower, until_height: int | None, every: float, say: Any,
                 alerts: _Alerts | None = None) -> None:  # fmt: skip
    with stop_on_signals(asyncio.Event()) as stop:
        await _follow(follower, until_height, every, say, alerts, stop)


async def _follow(follower: NetworkFollower, until_height: int | None, every: float, say: Any,
                  alerts: _Alerts | None, stop: asyncio.Event) -> None:  # fmt: skip
    task = asyncio.create_task(follower.run())
    last_n, last_t, next_line = 0, time.monotonic(), time.monotonic() + every
    while not stop.is_set() and not task.done():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.05)
        s = follower.status()
        if until_height is not None and (s.observed_height or 0) >= until_height and not s.backfill_pending:
            break
        now = time.monotonic()
        if alerts is not None and now >= alerts.next_at:
            alerts.next_at = now + 1.0
            alerts.evaluated = await observe(alerts.engine, s, alerts.evaluated, alerts.outcomes, time.time())
        if every > 0 and now >= next_line:
            say(_progress(s, (s.events_total - last_n) / max(now - last_t, 1e-6)))
            last_n, last_t, next_line = s.events_total, now, now + every
    await follower.stop()
    await task  # a failure of the follower itself is raised here, not hidden
    if alerts is not None:  # what was seen since the last look still counts
        alerts.evaluated = await observe(alerts.engine, follower.status(), alerts.evaluated, alerts.outcomes,
                                         time.time())  # fmt: skip


@dataclass
class _Alerts:
    engine: AlertEngine
    outcomes: Callable[[int, int], Sequence[Mapping[str, Any]]]
    evaluated: int | None = None
    next_at: float = 0.0


def register(app: typer.Typer) -> None:
    @app.command("watch")
    def watch_cmd(
        name: Annotated[str, typer.Argument(help="The run to follow into (created if new, resumed if not).")],
        rpc: Annotated[list[str] | None, typer.Option("--rpc", help=RPC_HELP)] = None,
        casper: Annotated[list[str] | None, typer.Option("--casper", help=CASPER_HELP)] = None,
        data_dir: DataDir = None,
        max_backfill: Annotated[int, typer.Option(min=0, max=100_000, help="Most heights refilled per gap.")] = 100,
        silence_timeout: Annotated[float, typer.Option(min=0.1, help="Seconds without a frame = lost.")] = 60.0,
        until_height: Annotated[int | None, typer.Option(help="Stop once this height is committed.")] = None,
        progress: Annotated[float, typer.Option(min=0.0, help="Seconds between progress lines (0: none).")] = 1.0,
        alert: Annotated[list[str] | None, typer.Option("--alert", help=ALERT_HELP)] = None,
    ) -> None:
        """Follow a CometBFT network over its RPC websocket (--rpc), or Casper nodes' SSE streams (--casper), into
        run NAME; Ctrl-C stops cleanly."""
        if casper:  # another chain family's watch: found through the registry, as every family is
            if rpc:
                raise _fail(InputError("--rpc (CometBFT) and --casper (Casper): one chain per run"))
            watch = registry.family(CASPER).watch  # type: ignore[attr-defined]
            watch(name, casper, data_dir=data_dir, progress=progress, keepalive_timeout=silence_timeout,
                  until_height=until_height, alerts=alert or [])  # fmt: skip
            return
        if not rpc:
            raise _fail(InputError("watch needs --rpc URL (a CometBFT node) or --casper URL (a Casper node)"))
        try:
            for url in rpc:
                parse_endpoint(url)
        except InputError as exc:
            raise _fail(exc) from None
        settings = _settings(data_dir)
        try:
            limits = parse_options(alert or [], defaults(settings))
        except InputError as exc:
            raise _fail(exc) from None
        with _opened(settings) as store:
            run = store.get_or_create_run(name, "cometbft")
            if run.chain != "cometbft":
                raise _fail(InputError(f"run {name!r} is a {run.chain} run, not a CometBFT network"))
            seen, committed, last_seen = resume_state(store, run.id)
            follower = NetworkFollower(
                name, rpc, StoreSink(store, name, "cometbft"), max_backfill=max_backfill,
                silence_timeout=silence_timeout, seen=seen, committed=committed, last_seen_at=last_seen,
                on_validator_set=lambda h, vs: record_validator_set(store, run.id, h, vs),
            )  # fmt: skip
            if committed is not None:
                out.print(f"resuming {name} after height {committed}")
            sinks = [_Printed(), *[k for k in alert_sinks(settings) if not isinstance(k, LogSink)]]
            alerts = _Alerts(AlertEngine(name, limits, sinks),
                             lambda a, b: missed(store, run.id, from_height=a, to_height=b))  # fmt: skip
            started = time.monotonic()
            tty = sys.stderr.isatty()
            with contextlib.ExitStack() as stack:
                status = stack.enter_context(err.status("connecting")) if tty else None
                say = status.update if status is not None else (lambda line: err.print(line, soft_wrap=True))
                asyncio.run(_watch(follower, until_height, progress, say, alerts))
            out.print(summary_line(name, follower.status(), time.monotonic() - started), soft_wrap=True)
            if follower.last_write_error:
                err.print(f"[red]error:[/red] the store refused events: {follower.last_write_error}", soft_wrap=True)
                raise typer.Exit(1)
