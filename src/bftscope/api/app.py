"""The app factory: ``create_app(settings)`` builds the FastAPI app; nothing happens at import time.

The store is opened, and the job runner started, when the app starts (lifespan), and closed when it
stops: shutdown waits for running and queued processing jobs to finish (graceful shutdown), after
uvicorn has let in-flight requests complete.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from bftscope import __version__
from bftscope.api.auth import AuthGateMiddleware
from bftscope.api.context import ApiContext
from bftscope.api.errors import install_error_handlers
from bftscope.api.middleware import MiddlewareConfig, install_middleware
from bftscope.api.netmetrics import NetworkMetrics
from bftscope.api.routes import events, feed, health, networks, projects, simulations, users
from bftscope.config import Settings
from bftscope.control.jobs import job_runner, recover_after_crash
from bftscope.control.networks import list_networks
from bftscope.errors import InputError
from bftscope.families import registry
from bftscope.ingest.derived import rebuild_stale
from bftscope.live import retention
from bftscope.live.alertsinks import PrometheusSink
from bftscope.live.broadcast import make_broadcaster
from bftscope.live.following import alert_sinks, build_supervisor, spec_of
from bftscope.store import Store, open_store

log = logging.getLogger("bftscope.api")

__all__ = ["check_bind", "create_app"]


def check_bind(settings: Settings, host: str) -> None:
    """Refuse local (token-less) mode unless the server listens on a loopback address only."""
    if settings.auth_mode != "local":
        return
    loopback = host == "localhost"
    with contextlib.suppress(ValueError):
        loopback = loopback or ipaddress.ip_address(host).is_loopback
    if not loopback:
        raise InputError(f"auth_mode 'local' (no tokens) is refused on {host}: listen on 127.0.0.1 or use tokens")


def _middleware_config(s: Settings) -> MiddlewareConfig:
    return MiddlewareConfig(
        cors_origins=tuple(s.cors_origins), rate_limit_per_s=s.rate_limit_per_s, rate_limit_burst=s.rate_limit_burst,
        rate_limit_enabled=s.rate_limit_enabled, trusted_proxies=tuple(s.trusted_proxies),
        max_body_bytes=s.max_body_bytes, max_upload_bytes=s.max_upload_request_bytes, hsts=s.hsts,
    )  # fmt: skip


def create_app(settings: Settings, *, store: Store | None = None) -> FastAPI:
    """The API over the store the settings name (``settings.data_dir``` (or over ``store``, which the caller owns)."""
    telemetry = health.Telemetry()

    def start(st: Store) -> ApiContext:
        jobs = job_runner(st, settings, on_done=lambda sim_id: app.state.ctx.forget_simulation(sim_id))
        recover_after_crash(st, settings.data_dir)
        # Runs whose derived tables a killed ingest left stale are served whole; one that cannot be
        # rebuilt now stays stale (its derived answers are incomplete) rather than keep the server down.
        rebuilt = rebuild_stale(st, on_error=lambda run, exc: log.warning(
            "run %s: derived tables stale, rebuild failed (%s); run `bftscope rebuild %s`", run, exc.message, run))
        if rebuilt:
            log.info("rebuilt the derived tables of %d stale run(s): %s", len(rebuilt), ", ".join(rebuilt))
        return ApiContext(store=st, settings=settings, jobs=jobs, telemetry=telemetry)

    alerts = [*alert_sinks(settings), PrometheusSink(telemetry.registry)]
    network_metrics = NetworkMetrics(telemetry.registry)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own = getattr(app.state, "ctx", None) is None
        if own:
            app.state.ctx = start(open_store(settings))
        ctx: ApiContext = app.state.ctx
        ctx.network_metrics = network_metrics
        pruner = ctx.pruner = retention.Pruner(ctx.store, settings)  # live runs' retention
        pruning = pruner.start()
        ctx.broadcaster = make_broadcaster(settings)  # before the followers: their sinks publish through it
        await ctx.broadcaster.start()
        for family in registry.families():
            await family.start_serving(ctx)
        if settings.follow_networks:
            ctx.networks = build_supervisor(ctx.store, settings, alerts, ctx.broadcaster)
            await ctx.networks.start([spec_of(n, settings) for n in list_networks(ctx.store)])
        try:
            yield
        finally:
            if ctx.networks is not None:
                await ctx.networks.shutdown()
                ctx.networks = None
            for family in registry.families():
                await family.stop_serving(ctx)
            await ctx.broadcaster.close()
            await pruner.close(pruning)
            if own:
                app.state.ctx.jobs.shutdown()
                app.state.ctx.store.close()
                del app.state.ctx
            else:
                app.state.ctx.jobs.wait()

    # redirect_slashes off: Starlette's redirect builds its Location from the Host header; ours is relative
    # (bftscope.api.errors answers it from the 404 handler)
    app = FastAPI(title="bftscope", version=__version__, lifespan=lifespan, redirect_slashes=False,
                  description="Consensus observability for BFT blockchains: CometBFT runs, their events and metrics. "
                  "Errors are always {\"error\": message, \"code\": code}.")  # fmt: skip
    install_error_handlers(app)
    for module in (users, projects, simulations, events, networks, feed):
        app.include_router(module.router)
    for family in registry.families():  # each chain family's own routes (metrics, analytics, …)
        for router in family.routers():
            app.include_router(router)
    app.include_router(health.router)
    app.add_middleware(AuthGateMiddleware)  # innermost: tokens are checked before any body is read
    install_middleware(app, _middleware_config(settings), telemetry.observe)
    if store is not None:  # the caller owns the store: the app is usable at once, even without a lifespan
        app.state.ctx = start(store)
    return app
