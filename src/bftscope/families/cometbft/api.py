"""The CometBFT family's API routers, mounted by the app from the registry (URLs and answers as before)."""

from __future__ import annotations

from fastapi import APIRouter

from bftscope.families.cometbft import analytics_routes, metrics_routes

__all__ = ["ROUTERS"]

ROUTERS: tuple[APIRouter, ...] = (metrics_routes.router, analytics_routes.router)
