"""The Casper family's API routers, mounted by the app from the registry: subscriptions (WebSocket, SSE)."""

from __future__ import annotations

from fastapi import APIRouter

from bftscope.families.casper import sse_routes, ws_routes

__all__ = ["ROUTERS"]

ROUTERS: tuple[APIRouter, ...] = (ws_routes.router, sse_routes.router)
