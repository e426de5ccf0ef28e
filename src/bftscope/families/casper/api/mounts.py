"""The Casper REST routers: the same routes mounted twice (docs/casper.md "REST").

* ``/v1/casper/{network}/…``: any followed Casper network, with the API's token and ownership;
* the root (``/block/{hash}``, ``/blocks``, …, ``/sidecar/…``): the network ``BFTSCOPE_CASPER_ROOT_NETWORK``
  names, without a token, for the seed's clients (off by default: then 404).

Each mount also owns the paths under its routes' first segments (``block``, ``blocks``, ``deploy``,
``accountDeploys``; ``sidecar``): a GET of any other path there is the seed's ``Bad Request`` text (the
sidecar's ``Invalid request path provided`` under ``sidecar``), as those tools answered. Nothing else at the
root is touched: ``/v1/…``, ``/healthz``, ``/metrics``, ``/docs`` and the other families' routes answer as before,
and under ``/v1/casper/{network}/`` only these prefixes are claimed, so the family's other routers (analytics,
subscriptions) mount beside them in any order.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from fastapi.routing import APIRoute
from starlette.routing import compile_path

from bftscope.families.casper.api.responses import text
from bftscope.families.casper.api.scope import CasperScope, root_scope, v1_scope
from bftscope.families.casper.api.seed_routes import add_seed_routes
from bftscope.families.casper.api.sidecar_routes import add_sidecar_routes, invalid_path

__all__ = ["ROOT_PREFIXES", "ROUTERS", "root_router", "v1_router"]

ROOT_PREFIXES = ("block", "blocks", "deploy", "accountDeploys")  # the seed's; the sidecar's is "sidecar"


def _claim(router: APIRouter, scope: Callable[..., CasperScope]) -> None:
    """The 400s for unknown paths under the mount's prefixes (added after the real routes, which match first).
    A real route's path with a stray trailing slash is redirected (307, relative) as the rest of the API does."""
    real = [compile_path(route.path)[0] for route in router.routes if isinstance(route, APIRoute)]

    def seed_bad_request(request: Request) -> Response:
        path: str = request.scope["path"]
        if path.endswith("/") and any(rx.match(path.rstrip("/")) for rx in real):
            query = request.scope.get("query_string", b"").decode("latin-1")
            location = quote(path.rstrip("/")) + (f"?{quote(query, safe='=&+%/:,;')}" if query else "")
            return Response(status_code=307, headers={"Location": location})
        return text(400, "Bad Request")

    # the scope still applies: no token, or a network the caller may not see, is answered before the 400
    guard = [Depends(scope)]
    for prefix in ROOT_PREFIXES:
        for path in (f"/{prefix}", f"/{prefix}/{{rest:path}}"):
            if path != "/blocks":  # /blocks is a route of its own
                router.add_api_route(path, seed_bad_request, methods=["GET"], dependencies=guard,
                                     include_in_schema=False)  # fmt: skip
    for path in ("/sidecar", "/sidecar/{rest:path}"):
        router.add_api_route(path, invalid_path, methods=["GET"], dependencies=guard,
                             include_in_schema=False)  # fmt: skip


def _router(scope: Callable[..., CasperScope], **kwargs: object) -> APIRouter:
    router = APIRouter(**kwargs)  # type: ignore[arg-type]
    add_seed_routes(router, scope)
    add_sidecar_routes(router, scope)
    _claim(router, scope)
    return router


def v1_router() -> APIRouter:
    return _router(v1_scope, prefix="/v1/casper/{network}", tags=["casper"])


def root_router() -> APIRouter:
    return _router(root_scope, tags=["casper (root mount: BFTSCOPE_CASPER_ROOT_NETWORK)"])


ROUTERS: tuple[APIRouter, ...] = (v1_router(), root_router())
