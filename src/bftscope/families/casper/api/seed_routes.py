"""The CasperLabs event-store's routes (``shared/reference/live-sources.md`` §C1), added to a router per mount.

``GET block/{hash}``, ``deploy/{hash}``, ``blocks`` and ``accountDeploys/{account}`` answer the seed's JSON
byte for byte, its page envelope with express-paginate's arithmetic (default limit 10, at most 20) and its
text errors. Beyond the seed: filters (``blocks``: ``era``, ``proposer``, ``from``/``to`` on the block
time, ``minHeight``/``maxHeight``; ``accountDeploys``: ``state``, ``from``/``to`` on the deploy's time) and
keyset pages: a request with ``cursor`` (empty for the first page) gets ``{"data", "next_cursor"}`` instead of
the envelope, up to :data:`CURSOR_MAX_LIMIT` rows a page, and ``page`` is ignored. A client that sends none of
these gets exactly the seed's answer.
"""

# no "from __future__ import annotations": FastAPI reads the routes' annotations, and ``Net`` is local

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from bftscope.families.casper.api import blocks, cursors, deploys, params
from bftscope.families.casper.api.models import (
    BlocksCursorPage,
    BlocksPage,
    DeploysCursorPage,
    DeploysPage,
    SeedBlockDetail,
    SeedDeploy,
)
from bftscope.families.casper.api.paging import page_count, page_links
from bftscope.families.casper.api.responses import SEED_RESPONSES, json, seed_errors, text
from bftscope.families.casper.api.scope import CasperScope

__all__ = ["CURSOR_MAX_LIMIT", "add_seed_routes"]

CURSOR_MAX_LIMIT = 1000

Str = Annotated[str | None, Query()]
From = Annotated[str | None, Query(alias="from", description="RFC 3339; inclusive")]
To = Annotated[str | None, Query(description="RFC 3339; exclusive")]
Page = Annotated[str | None, Query(description="from 1 (express-paginate: a non-number or a page below 1 is 1)")]
Limit = Annotated[str | None, Query(description="rows a page: default 10, at most 20 (1000 with a cursor)")]
Cursor = Annotated[str | None, Query(description="keyset paging: empty for the first page, then next_cursor")]


def _values(request: Request, name: str) -> list[str]:
    return request.query_params.getlist(name)


def _path(request: Request) -> str:
    raw = request.scope.get("raw_path")
    return raw.decode("latin-1") if isinstance(raw, bytes) else str(request.scope["path"])


def _envelope(request: Request, req: params.PageRequest, data: list[dict[str, Any]], items: int) -> Response:
    pages = page_count(items, req.limit)
    query = request.scope.get("query_string", b"").decode("latin-1")
    return json({"data": data, "pageCount": pages, "itemCount": items,
                 "pages": page_links(_path(request), query, req, pages)})  # fmt: skip


def _page(request: Request, cursor: str | None) -> params.PageRequest:
    maximum = CURSOR_MAX_LIMIT if cursor is not None else 20
    return params.page_request(_values(request, "page"), _values(request, "limit"), maximum=maximum)


def add_seed_routes(router: APIRouter, scope: Callable[..., CasperScope]) -> None:
    """The seed's four routes on ``router``, reading the network ``scope`` resolves."""
    Net = Annotated[CasperScope, Depends(scope)]

    @router.get("/block/{blockHash}", response_model=SeedBlockDetail, responses=SEED_RESPONSES)
    @seed_errors
    def seed_block(blockHash: str, net: Net) -> Response:
        """A block and its deploy and transfer hashes (the seed's ``/block/:blockHash``)."""
        found = None if net.run_id is None else blocks.block_detail(net.store, net.run_id, params.block_hash(blockHash))
        return text(404, "Block not found.") if found is None else json(found)

    @router.get("/deploy/{deployHash}", response_model=SeedDeploy, responses=SEED_RESPONSES)
    @seed_errors
    def seed_deploy(deployHash: str, net: Net) -> Response:
        """A deploy's state as bftscope saw it (the seed's ``/deploy/:deployHash``)."""
        h = params.block_hash(deployHash, "deployHash")
        found = None if net.run_id is None else deploys.deploy_detail(net.store, net.run_id, h)
        return text(404, "Deploy not found.") if found is None else json(found)

    @router.get("/blocks", response_model=BlocksPage | BlocksCursorPage, responses=SEED_RESPONSES)
    @seed_errors
    def seed_blocks(request: Request, net: Net, page: Page = None, limit: Limit = None, cursor: Cursor = None,
                    era: Str = None, proposer: Str = None, from_: From = None, to: To = None,
                    minHeight: Str = None, maxHeight: Str = None) -> Response:  # fmt: skip
        """Blocks newest first, in the seed's page envelope; with ``cursor``, a keyset page."""
        flt = blocks.BlockFilter(era=params.era(era),
                                 proposer=params.public_key(proposer, "proposer") if proposer else None,
                                 from_ms=params.time_ms(from_, "from"), to_ms=params.time_ms(to, "to"),
                                 min_height=params.height(minHeight, "minHeight"),
                                 max_height=params.height(maxHeight, "maxHeight"))  # fmt: skip
        req = _page(request, cursor)
        if cursor is not None:
            below = cursors.decode_block(cursor) if cursor else None
            rows = [] if net.run_id is None else blocks.block_page(net.store, net.run_id, flt, limit=req.limit + 1,
                                                                   below=below)  # fmt: skip
            more, rows = len(rows) > req.limit, rows[: req.limit]
            return json({"data": rows, "next_cursor": cursors.encode_block(rows[-1]["height"]) if more else None})
        if net.run_id is None:
            return _envelope(request, req, [], 0)
        items = blocks.count_blocks(net.store, net.run_id, flt)
        data = blocks.block_page(net.store, net.run_id, flt, limit=req.limit, offset=req.offset) if items else []
        return _envelope(request, req, data, items)

    @router.get("/accountDeploys/{account}", response_model=DeploysPage | DeploysCursorPage,
                responses=SEED_RESPONSES)  # fmt: skip
    @seed_errors
    def seed_account_deploys(account: str, request: Request, net: Net, page: Page = None, limit: Limit = None,
                             cursor: Cursor = None, state: Str = None, from_: From = None,
                             to: To = None) -> Response:  # fmt: skip
        """An account's deploys by the height of their block, newest first (``state``: accepted, processed,
        expired or failed, comma-separated)."""
        key = params.public_key(account)
        flt = deploys.DeployFilter(states=params.deploy_states(state), from_ms=params.time_ms(from_, "from"),
                                   to_ms=params.time_ms(to, "to"))  # fmt: skip
        req = _page(request, cursor)
        if cursor is not None:
            after = cursors.decode_deploy(cursor) if cursor else None
            found = [] if net.run_id is None else deploys.account_deploys(net.store, net.run_id, key, flt,
                                                                          limit=req.limit + 1, after=after)  # fmt: skip
            more, found = len(found) > req.limit, found[: req.limit]
            return json({"data": [d for d, _ in found],
                         "next_cursor": cursors.encode_deploy(found[-1][1]) if more else None})  # fmt: skip
        if net.run_id is None:
            return _envelope(request, req, [], 0)
        items = deploys.count_account_deploys(net.store, net.run_id, key, flt)
        rows = [] if not items else deploys.account_deploys(net.store, net.run_id, key, flt, limit=req.limit,
                                                            offset=req.offset)  # fmt: skip
        return _envelope(request, req, [d for d, _ in rows], items)

    del seed_block, seed_deploy, seed_blocks, seed_account_deploys  # registered on the router

