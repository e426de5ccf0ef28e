"""``bftscope watch NAME --casper URL [--casper URL …]``: follow Casper nodes into run NAME of the embedded store.

The ``watch`` command is one command for every chain (it is registered with the CometBFT family's ``--rpc``);
``--casper`` hands it here. The run is ``net:NAME``, as a network the server follows, so ``bftscope casper report
NAME`` and the REST routes read it. A progress line (events, events/s, highest block, each node's status) until Ctrl-C
(or SIGTERM, ``--until-height``, ``--until-events``), then a one-line summary. Watching a run again resumes it:
each node channel asks ``start_from`` the last id the run holds, and nothing is stored twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import typer

from bftscope.cli import _fail, _opened, _settings, err, out
from bftscope.errors import InputError
from bftscope.families.casper.cli import run_name
from bftscope.families.casper.follow.follower import CasperFollower
from bftscope.families.casper.follow.nodeurl import parse_node_url
from bftscope.families.casper.follow.resume import last_event_ids
from bftscope.families.casper.follow.status import CasperStatus
from bftscope.families.casper.sink import CasperSink, SinkStats
from bftscope.live.stopsignals import stop_on_signals

__all__ = ["ALERTS", "CASPER_HELP", "progress_line", "summary_line", "watch_casper"]

CASPER_HELP = ("A Casper node's SSE server, e.g. http://host:9999 (its /events/main, /events/deploys and "
               "/events/sigs), or a URL ending in /events for the legacy stream (repeatable: several nodes at once).")


def _nodes(s: CasperStatus) -> str:
    return ", ".join(f"{n.label} {n.state}" for n in s.nodes)


def progress_line(s: CasperStatus, rate: float) -> str:
    height = f"block {s.height}" if s.height is not None else "no block yet"
    return f"{s.events_total:,} events · {rate:,.1f} events/s · {height} · {_nodes(s)}"


def summary_line(name: str, s: CasperStatus, stats: SinkStats, seconds: float) -> str:
    nodes = "; ".join(
        f"{n.label} {n.state} {n.events:,} events {n.reconnects} reconnects {sum(n.skipped.values())} skipped"
        for n in s.nodes
    )
    return (f"{name}: {s.events_total:,} events in {seconds:.1f} s, highest block {s.height}, {stats.stored:,} new "
            f"entities, {stats.duplicate_events:,} events sent again, {stats.duplicate_entities:,} entities already "
            f"stored, {s.gaps} gaps; {nodes}")  # fmt: skip


async def _watch(follower: CasperFollower, until: Callable[[CasperStatus], bool], every: float,
                 say: Callable[[str], object]) -> None:  # fmt: skip
    with stop_on_signals(asyncio.Event()) as stop:
        task = asyncio.create_task(follower.run())
        last_n, last_t, next_line = 0, time.monotonic(), time.monotonic() + every
        while not stop.is_set() and not task.done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.05)
            s = follower.status()
            if until(s):
                break
            now = time.monotonic()
            if every > 0 and now >= next_line:
                say(progress_line(s, (s.events_total - last_n) / max(now - last_t, 1e-6)))
                last_n, last_t, next_line = s.events_total, now, now + every
        await follower.stop()
        await task  # a failure of the follower itself is raised here, not hidden

ALERTS: tuple[str, ...] = ()  # the --alert keys a Casper watch evaluates: none yet


def watch_casper(name: str, urls: Sequence[str], *, data_dir: Path | None, progress: float,
                 keepalive_timeout: float, until_height: int | None = None,
                 until_events: int | None = None, alerts: Sequence[str] = ()) -> None:  # fmt: skip
    """Follow the Casper nodes ``urls`` into run ``name`` until Ctrl-C (or a stop condition); exit 1 when the
    store refused events. ``alerts`` (``--alert KEY=VALUE``) are refused with exit code 2: there is no Casper
    alert in ``watch`` yet (:data:`ALERTS`), and an alert silently ignored would look like a quiet network."""
    if alerts:
        named = ", ".join(ALERTS) or "none yet"
        err.print(f"[red]error:[/red] --alert is not available with --casper: the Casper watch alerts are {named} "
                  "(CometBFT's --alert keys do not apply)", soft_wrap=True)  # fmt: skip
        raise typer.Exit(2)
    try:
        for url in urls:
            parse_node_url(url)
    except InputError as exc:
        raise _fail(exc) from None
    with _opened(_settings(data_dir)) as store:
        run = store.get_or_create_run(run_name(name), "casper")  # as a network the server follows: net:<name>
        if run.chain != "casper":
            raise _fail(InputError(f"run {name!r} is a {run.chain} run, not a Casper network"))
        sink = CasperSink(store, run.name)  # first: it applies what its journal holds beyond the store
        start_from = last_event_ids(store, run.id)
        if start_from:
            out.print(f"resuming {name}: {len(start_from)} node channels from their last event id", soft_wrap=True)
        follower = CasperFollower(name, urls, sink, keepalive_timeout=keepalive_timeout, start_from=start_from)

        def until(s: CasperStatus) -> bool:
            reached = until_height is not None and s.height is not None and s.height >= until_height
            return reached or (until_events is not None and s.events_total >= until_events)

        started = time.monotonic()
        try:
            with contextlib.ExitStack() as stack:
                status = stack.enter_context(err.status("connecting")) if sys.stderr.isatty() else None
                say = status.update if status is not None else (lambda line: err.print(line, soft_wrap=True))
                asyncio.run(_watch(follower, until, progress, say))
        finally:
            sink.close()
        out.print(summary_line(name, follower.status(), sink.stats, time.monotonic() - started), soft_wrap=True)
        if sink.stats.lost_events or follower.last_write_error:
            err.print(f"[red]error:[/red] the store refused {sink.stats.lost_events:,} events", soft_wrap=True)
            raise typer.Exit(1)
