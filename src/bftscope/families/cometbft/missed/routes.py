"""``/v1/simulations/{id}/analytics/missed`` (rows, paged) and ``…/analytics/missed/summary`` (per validator):
an uploaded run's missed votes, owner-checked like every simulation route (:mod:`.answer` does the work, the
same for a followed network's routes)."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from bftscope.api.deps import Caller, Ctx, HexId, simulation_owner_async
from bftscope.api.errors import errors
from bftscope.families.cometbft.missed.answer import MAX_LIMIT, MAX_VALIDATORS, MAX_WINDOW, missed_page, missed_summary
from bftscope.families.cometbft.missed.summary import DEFAULT_WINDOW

__all__ = ["router"]

router = APIRouter(prefix="/v1/simulations/{id}/analytics", tags=["analytics"])

FromH = Annotated[int | None, Query(alias="from", ge=0, le=2**62, description="first height (default: the first)")]
ToH = Annotated[int | None, Query(ge=0, le=2**62, description="last height (default: the last)")]
Validators = Annotated[list[str] | None, Query(alias="validator", max_length=MAX_VALIDATORS,
                                               description="validator address (hex), repeatable")]  # fmt: skip
Statuses = Annotated[list[str] | None, Query(alias="status", max_length=5,
                                             description="voted|late|nil|absent|unknown, repeatable")]  # fmt: skip


class MissedRow(BaseModel):
    model_config = ConfigDict(extra="forbid")
    height: int
    round: int
    validator: str
    type: str
    status: str
    power: int | None
    solo: bool
    commit_round: bool


class MissedPage(BaseModel):
    model_config = ConfigDict(extra="forbid")
    data: list[MissedRow]
    offset: int
    limit: int
    next_offset: int | None


class MissedSummary(BaseModel):
    model_config = ConfigDict(extra="forbid")
    window: int
    from_: int | None = Field(alias="from")
    to: int | None
    validators: list[dict[str, Any]]


def _json(body: Any) -> Response:
    return Response(orjson.dumps(body), media_type="application/json")


async def page_of(c: Any, run_id: int | None, from_: int | None, to: int | None, validator: list[str] | None,
                  status: list[str] | None, limit: int, offset: int) -> Response:  # fmt: skip
    """The answer of a ``…/missed`` route over run ``run_id`` (an empty page when the run has nothing yet)."""
    if run_id is None:
        return _json({"data": [], "offset": offset, "limit": limit, "next_offset": None})
    page = await run_in_threadpool(missed_page, c.store, run_id, from_height=from_, to_height=to,
                                   validators=validator, statuses=status, limit=limit, offset=offset)  # fmt: skip
    return _json(page)


async def summary_of(c: Any, run_id: int | None, from_: int | None, to: int | None, validator: list[str] | None,
                     window: int) -> Response:  # fmt: skip
    """The answer of a ``…/missed/summary`` route over run ``run_id``."""
    if run_id is None:
        return _json({"window": window, "from": from_, "to": to, "validators": []})
    return _json(await run_in_threadpool(missed_summary, c.store, run_id, from_height=from_, to_height=to,
                                         validators=validator, window=window))  # fmt: skip


@router.get("/missed", response_model=MissedPage, responses=errors(400, 401, 404))
async def missed_votes(
    id: HexId,
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
    (docs/live.md "Missed votes"), in height order, a page at a time (``next_offset`` for the next)."""
    _, run_id = await simulation_owner_async(c, who, id)
    return await page_of(c, run_id, from_, to, validator, status, limit, offset)


@router.get("/missed/summary", response_model=MissedSummary, responses=errors(400, 401, 404))
async def missed_votes_summary(
    id: HexId,
    c: Ctx,
    who: Caller,
    from_: FromH = None,
    to: ToH = None,
    validator: Validators = None,
    window: Annotated[int, Query(ge=1, le=MAX_WINDOW)] = DEFAULT_WINDOW,
) -> Response:
    """Per validator: votes by status and type, solo misses, the longest and current streak of missed
    blocks, and uptime over the last ``window`` committed heights; without ``from``/``to``, over the last
    10,000 heights (the range used is in the answer)."""
    _, run_id = await simulation_owner_async(c, who, id)
    return await summary_of(c, run_id, from_, to, validator, window)
