"""How ``bftscope serve`` follows its networks: the supervisor built over the store, the registry's families
and the alert sinks the settings ask for.

A network's follower comes from its chain family (``ChainFamily.follower``) and writes through the family's
live sink (``ChainFamily.live_sink``: a :class:`~bftscope.ingest.livesink.StoreSink` by default, or a
family's own store writer) on the run ``net:<name>``; its vote alerts read the family's vote outcomes
(``ChainFamily.vote_outcomes``) of that run.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from bftscope.config import Settings
from bftscope.control.networks import Network
from bftscope.errors import BftscopeError
from bftscope.families import registry
from bftscope.ingest.live import Gap
from bftscope.live.alerts import AlertSink, defaults, thresholds
from bftscope.live.alertsinks import LogSink, WebhookSink
from bftscope.live.endpoints import redact_text, redact_url
from bftscope.live.supervisor import Follower, NetworkSpec, NetworkSupervisor
from bftscope.store.base import Store

__all__ = ["RedactingSink", "SinkFollower", "alert_sinks", "build_supervisor", "spec_of"]

log = logging.getLogger("bftscope.live")


def spec_of(net: Network, settings: Settings) -> NetworkSpec:
    return NetworkSpec(net.id, net.name, net.chain, tuple(net.endpoints), thresholds(net.alerts, defaults(settings)),
                       net.run_name)  # fmt: skip


def alert_sinks(settings: Settings) -> list[AlertSink]:
    """The log always; the webhook when ``BFTSCOPE_ALERT_WEBHOOK_URL`` is set."""
    sinks: list[AlertSink] = [LogSink()]
    if settings.alert_webhook_url is not None:
        sinks.append(WebhookSink(settings.alert_webhook_url.get_secret_value(),
                                 timeout_s=settings.alert_webhook_timeout_s,
                                 retries=settings.alert_webhook_retries))  # fmt: skip
    return sinks


class RedactingSink:
    """An :class:`~bftscope.ingest.live.EventSink` that names each source by its redacted URL: a follower names
    sources (the run's nodes, shown by ``/events`` and summaries) after their endpoints, whose credentials
    must not reach the store's labels."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def write(self, source: str, events: Sequence[Any]) -> None:
        self.inner.write(redact_url(source), events)

    def gap(self, gap: Gap) -> None:
        self.inner.gap(dataclasses.replace(gap, source=redact_url(gap.source), reason=redact_text(gap.reason)))

    def flush(self) -> None:
        self.inner.flush()

    def __getattr__(self, name: str) -> Any:  # anything else a follower asks of its sink (store, run …)
        return getattr(self.inner, name)


class SinkFollower:
    """A family's follower with the server's duties around its live sink: the run's analytics kept current
    every ``keep_s`` seconds (late rows of old heights start no update of their own), and no analytics update
    or write still running once :meth:`stop` returns — the network's run may be deleted, or the store closed,
    next. Each duty applies when the sink has it (``update``, ``wait``, ``close``: ``ChainFamily.live_sink``)."""

    def __init__(self, inner: Follower, sink: Any, keep_s: float = 5.0) -> None:
        self.inner, self.sink, self.keep_s = inner, sink, keep_s

    async def run(self) -> None:
        """Run the follower; when its run fails the supervisor replaces it (and its sink), so the sink is closed
        here — a sink with a writer thread would otherwise leave one thread behind per restart."""
        try:
            if not hasattr(self.sink, "update"):
                await self.inner.run()
                return
            keeper = asyncio.create_task(self._keep())
            try:
                await self.inner.run()
            finally:
                keeper.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await keeper
        except Exception:
            if hasattr(self.sink, "close"):
                await asyncio.to_thread(self.sink.close)  # what it was handed is stored; its writer ends
            raise

    async def stop(self) -> None:
        await self.inner.stop()
        if hasattr(self.sink, "wait"):
            await asyncio.to_thread(self.sink.wait)  # an update write() started
        if hasattr(self.sink, "update"):
            await asyncio.to_thread(self._update)  # waits, under the sink's own lock, for one the keeper started
        if hasattr(self.sink, "close"):
            await asyncio.to_thread(self.sink.close)  # its writes done and its writer ended

    def status(self) -> Any:
        return self.inner.status()

    def listen(self, callback: Callable[[Any], None]) -> Any:
        return self.inner.listen(callback)

    async def _keep(self) -> None:
        while True:
            await asyncio.sleep(self.keep_s)
            await asyncio.to_thread(self._update)

    def _update(self) -> None:
        try:
            self.sink.update()
        except BftscopeError as exc:  # the events are stored; the sink's next update rebuilds what this could not
            log.warning("network run %s: analytics update failed (%s)", self.sink.run, exc)


def build_supervisor(store: Store, settings: Settings, sinks: Sequence[AlertSink],
                     broadcaster: Any = None) -> NetworkSupervisor:  # fmt: skip
    """``broadcaster``: where a family that publishes what its followers store (Casper) publishes it."""

    def follower(spec: NetworkSpec) -> Follower:
        family = registry.family(spec.chain)
        inner = family.live_sink(store, spec.run)
        try:
            family.publish_live(inner, broadcaster, spec.name)  # Casper: its subscribers, here and on other instances
            made: Follower = family.follower(spec.name, spec.endpoints, RedactingSink(inner), store=store,
                                             run=spec.run, settings=settings)  # fmt: skip
        except BaseException:
            if hasattr(inner, "close"):  # no follower will own it: a writer thread must not outlive it
                inner.close()
            raise
        return SinkFollower(made, inner)

    def outcomes(spec: NetworkSpec, lo: int, hi: int) -> Sequence[Mapping[str, Any]]:
        runs = store.query("SELECT id FROM runs WHERE name = :run", {"run": spec.run})
        if not runs:
            return []
        return registry.family(spec.chain).vote_outcomes(store, int(runs[0][0]), lo, hi)

    return NetworkSupervisor(follower, sinks=sinks, vote_outcomes=outcomes, feed_batches=settings.feed_queue_batches)
