"""Self-monitoring: ``/healthz`` (the process answers), ``/readyz`` (the store answers a query) and
``/metrics`` (Prometheus: HTTP requests and latency by route, processing jobs, ingested events, store size).

``/metrics`` is open by default (the server listens on loopback unless told otherwise). A deployment that
exposes the port can restrict it to client addresses (``metrics_allowed_clients``, 403 for others) and/or
to requests with an API token (``metrics_require_token``, 401 without).
"""

from __future__ import annotations

import ipaddress

from fastapi import APIRouter, Depends, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from bftscope.api import schemas
from bftscope.api.auth import MISSING, authenticate
from bftscope.api.context import ApiContext
from bftscope.api.deps import Ctx
from bftscope.api.errors import errors
from bftscope.api.middleware.scopeinfo import TrustedProxies
from bftscope.control import simulations
from bftscope.errors import ForbiddenError, UnauthorizedError
from bftscope.live import retention
from bftscope.store.base import ping
from bftscope.store.eventquery import count_all_events

router = APIRouter(tags=["health"])


class Telemetry:
    """The app's own Prometheus registry (one per app, so tests and several apps never collide)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("bftscope_http_requests_total", "HTTP requests", ["method", "route", "status"],
                                registry=self.registry)  # fmt: skip
        self.latency = Histogram("bftscope_http_request_duration_seconds", "HTTP request duration", ["route"],
                                 buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
                                 registry=self.registry)  # fmt: skip
        self.jobs_running = Gauge("bftscope_jobs_running", "Processing jobs queued or running", registry=self.registry)
        self.jobs_done = Gauge("bftscope_jobs_finished", "Processing jobs finished since start", ["outcome"],
                               registry=self.registry)  # fmt: skip
        self.events = Gauge("bftscope_events_stored", "Events in the store", registry=self.registry)
        self.simulations = Gauge("bftscope_simulations", "Simulations by status", ["status"], registry=self.registry)
        self.store_bytes = Gauge("bftscope_store_bytes", "Size of the embedded store file", registry=self.registry)
        # live runs (docs/live.md "Retention"): their size, and what retention removed since the server started
        self.live_rows = Gauge("bftscope_live_store_rows", "Rows a live run holds, per table", ["run", "table"],
                               registry=self.registry)  # fmt: skip
        self.live_bytes = Gauge("bftscope_live_store_bytes", "A live run's estimated share of the store file",
                                ["run"], registry=self.registry)  # fmt: skip
        self.pruned = Gauge("bftscope_retention_removed_rows", "Rows retention removed since start, per table",
                            ["run", "table"], registry=self.registry)  # fmt: skip
        self.prune_passes = Gauge("bftscope_retention_passes", "Passes of the background pruner since start",
                                  registry=self.registry)  # fmt: skip
        self.prune_errors = Gauge("bftscope_retention_errors", "Prunes that failed since start (retried)",
                                  registry=self.registry)  # fmt: skip

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(route).observe(seconds)


@router.get("/healthz", response_model=schemas.Message)
def healthz() -> schemas.Message:
    return schemas.Message(message="ok")


@router.get("/readyz", response_model=schemas.Message, responses={503: {"model": schemas.ErrorBody}})
def readyz(c: Ctx) -> schemas.Message:
    ping(c.store)
    return schemas.Message(message="ready")


async def metrics_access(request: Request, c: Ctx) -> None:
    """403 for a client outside ``metrics_allowed_clients`` (when set); 401 without a valid token when
    ``metrics_require_token``."""
    s = c.settings
    if s.metrics_allowed_clients:
        client = TrustedProxies(s.trusted_proxies).client_ip(request.scope)
        try:
            address = ipaddress.ip_address(client)
        except ValueError:
            address = None
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped  # a dual-stack socket reports IPv4 clients as ::ffff:a.b.c.d
        networks = (ipaddress.ip_network(entry, strict=False) for entry in s.metrics_allowed_clients)
        if address is None or not any(address in network for network in networks):
            raise ForbiddenError("/metrics is not open to this client address")
    if s.metrics_require_token and await authenticate(c, request.headers) is None:
        raise UnauthorizedError(MISSING)


def _live_runs(c: ApiContext, t: Telemetry, file_bytes: int) -> None:
    names = {int(r["id"]): str(r["name"]) for r in c.store.list_runs()}
    for run_id in retention.live_runs(c.store):
        size = retention.store_size(c.store, run_id, file_bytes=file_bytes)
        for table, rows in size.rows.items():
            t.live_rows.labels(names[run_id], table).set(rows)
        t.live_bytes.labels(names[run_id]).set(size.bytes_estimate or 0)
    pruner = c.pruner
    if pruner is not None:
        for (run_id, table), n in pruner.removed.items():
            if run_id in names:
                t.pruned.labels(names[run_id], table).set(n)
        t.prune_passes.set(pruner.passes)
        t.prune_errors.set(pruner.errors)


@router.get("/metrics", response_class=Response, dependencies=[Depends(metrics_access)],
            responses={200: {"content": {"text/plain": {}}}, **errors(401, 403)})  # fmt: skip
def metrics(c: Ctx) -> Response:
    t: Telemetry = c.telemetry
    t.jobs_running.set(c.jobs.running())
    t.jobs_done.labels("completed").set(c.jobs.completed)
    t.jobs_done.labels("failed").set(c.jobs.failed)
    t.events.set(count_all_events(c.store))
    for status, n in simulations.status_counts(c.store):
        t.simulations.labels(status).set(n)
    path = c.settings.store_path
    file_bytes = path.stat().st_size if path.exists() else 0
    t.store_bytes.set(file_bytes)
    _live_runs(c, t, file_bytes)
    if c.network_metrics is not None:
        c.network_metrics.update(c.networks, c.store, file_bytes)
    return Response(generate_latest(t.registry), media_type=CONTENT_TYPE_LATEST)
