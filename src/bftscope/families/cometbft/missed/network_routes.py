"""``/v1/networks/{networkId}/missed`` and ``…/missed/summary``: a followed network's missed votes, the same
answers, filters and pages as an uploaded simulation's (:mod:`.routes`), over the network's run
``net:<name>``; owner-checked like every network route (another user's network is 404)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from starlette.concurrency import run_in_threadpool

from bftscope.api.deps import Caller, Ctx, HexId
from bftscope.api.errors import errors
from bftscope.api.routes.networks import network_for
from bftscope.control.networks import run_id_of
from bftscope.families.cometbft.missed.answer import MAX_LIMIT, MAX_WINDOW
from bftscope.families.cometbft.missed.routes import (
    FromH,
    MissedPage,
    MissedSummary,
    Statuses,
    ToH,
    Validators,
    page_of,
    summary_of,
)  # fmt: skip
from bftscope.families.cometbft.missed.summary import DEFAULT_WINDOW

__all__ = ["router"]

router = APIRouter(prefix="/v1/networks/{networkId}", tags=["networks"])


async def _run_id(c: Ctx, who: Caller, network_id: str) -> int | None:
    net = await run_in_threadpool(network_for, c, who, network_id)
    return await run_in_threadpool(run_id_of, c.store, net)


@router.get("/missed", response_model=MissedPage, responses=errors(400, 401, 404))
async def network_missed_votes(
    networkId: HexId,
    c: Ctx,
    who: Caller,
    from_: FromH = None,
    to: ToH = None,
    validator: Validators = None,
    status: Statuses = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 1000,
    offset: Annotated[int, Query(ge=0, le=2**62)] = 0,
) -> Response:
    """Per height, round, validator of that height's set and vote type: voted, late, nil, absent or unknown
    (docs/live.md "Missed votes") of the network followed so far, a page at a time."""
    return await page_of(c, await _run_id(c, who, networkId), from_, to, validator, status, limit, offset)


@router.get("/missed/summary", response_model=MissedSummary, responses=errors(400, 401, 404))
async def network_missed_summary(
    networkId: HexId,
    c: Ctx,
    who: Caller,
    from_: FromH = None,
    to: ToH = None,
    validator: Validators = None,
    window: Annotated[int, Query(ge=1, le=MAX_WINDOW)] = DEFAULT_WINDOW,
) -> Response:
    """Per validator: votes by status and type, solo misses, streaks of missed blocks and uptime over the
    last ``window`` committed heights (without ``from``/``to``: the last 10,000 heights)."""
    return await summary_of(c, await _run_id(c, who, networkId), from_, to, validator, window)
