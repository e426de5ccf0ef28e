"""The CometBFT family's API routers, mounted by the app from the registry (URLs and answers as before)."""

from __future__ import annotations

from fastapi import APIRouter

from bftscope.families.cometbft import analyzer_routes, answers_routes
from bftscope.families.cometbft.missed import network_routes as network_missed_routes
from bftscope.families.cometbft.missed import routes as missed_routes

__all__ = ["ROUTERS"]

ROUTERS: tuple[APIRouter, ...] = (analyzer_routes.router, answers_routes.router, missed_routes.router,
                                  network_missed_routes.router)  # fmt: skip
