"""The original's eleven metric routes, ``/v1/simulations/{id}/metrics/…``, with its JSON shapes, served
from :mod:`.analytics.analyzer` (the CometBFT Analyzer's metrics, hence the module's name).

Deviation, on purpose: without ``from``/``to`` every metric covers the **whole run** (the original used
the last minute of wall-clock time, so historical simulations looked empty). With either bound the answer
is computed live for that window; only ``from`` → until the end, only ``to`` → from the start. Whole-run
answers come from the rollups stored at ingest (:mod:`.analytics.rollups`), as JSON bytes, with
no re-encoding. An unprocessed simulation answers empty results, as the original did.
"""

from __future__ import annotations

import gzip
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from bftscope.analytics.windows import parse_bounds
from bftscope.api import schemas
from bftscope.api.context import ApiContext
from bftscope.api.deps import Caller, Ctx, HexId, simulation_owner_async
from bftscope.api.errors import errors
from bftscope.errors import InputError
from bftscope.families.cometbft.analytics import analyzer, network_latency, rollups
from bftscope.families.cometbft.analytics.analyzer import WHOLE_RUN, Window

router = APIRouter(prefix="/v1/simulations/{id}/metrics", tags=["metrics (original)"])

From = Annotated[str | None, Query(alias="from", max_length=64, description="RFC 3339; default: start of the run")]
To = Annotated[str | None, Query(max_length=64, description="RFC 3339; default: end of the run")]

MAX_PAGE = 2**31

EMPTY: dict[str, Any] = {
    "latency_stats": {"histogram": [], "jitter": []},
    "network_overview": network_latency.network_overview_empty(),
}


def window(from_: str | None, to: str | None) -> Window:
    bounds = parse_bounds(from_, to)
    return WHOLE_RUN if bounds is None else Window(*bounds)


async def answer_async(c: ApiContext, sim_id: str, run_id: int | None, name: str, win: Window) -> Response:
    """:func:`answer` on the event loop when cached (the common case), else on a worker thread."""
    if run_id is not None and win == WHOLE_RUN:
        body = c.answers.get((sim_id, run_id, name))
        if body is not None:
            return Response(body, media_type="application/json")
    return await run_in_threadpool(answer, c, sim_id, run_id, name, win)


def answer(c: ApiContext, sim_id: str, run_id: int | None, name: str, win: Window) -> Response:
    if run_id is None:
        return Response(orjson.dumps(EMPTY.get(name, [])), media_type="application/json")
    if win == WHOLE_RUN:
        key = (sim_id, run_id, name)
        body = c.answers.get(key)
        if body is None:
            body = rollups.answer_json(c.store, run_id, name)
            if c.owners.get(sim_id) is not None:  # settled (not being reprocessed): safe to keep
                c.answers.put(key, body)
    else:
        body = rollups.answer_json(c.store, run_id, name, win)
    return Response(body, media_type="application/json")


GZIP_ABOVE = 64 * 1024


async def compressed(c: ApiContext, request: Request, response: Response, key: Any) -> Response:
    """A large whole-run answer gzip-compressed once and kept, for clients that accept gzip (browsers do):
    a 10 MB answer then costs its compressed size on the wire and no CPU per request. A kept answer is
    compressed at the highest level (about a tenth smaller than level 5, so more answers per second on
    the wire; the time is spent once); one computed for a single request at a middle level."""
    body = bytes(response.body)
    if len(body) < GZIP_ABOVE or "gzip" not in request.headers.get("accept-encoding", ""):
        return response
    gz = c.answers.get((*key, "gzip")) if key is not None else None
    if gz is None:
        gz = await run_in_threadpool(gzip.compress, body, 9 if key is not None else 5)
        if key is not None and c.owners.get(key[0]) is not None:
            c.answers.put((*key, "gzip"), gz)
    return Response(gz, media_type="application/json", headers={"Content-Encoding": "gzip", "Vary": "Accept-Encoding"})


def _route(path: str, name: str, model: Any, summary: str) -> None:
    async def handler(
        id: HexId, c: Ctx, who: Caller, request: Request, from_: From = None, to: To = None
    ) -> Response:
        _, run_id = await simulation_owner_async(c, who, id)
        win = window(from_, to)
        response = await answer_async(c, id, run_id, name, win)
        return await compressed(c, request, response, (id, run_id, name) if win == WHOLE_RUN else None)

    handler.__doc__ = summary
    router.add_api_route(path, handler, methods=["GET"], response_model=model, responses=errors(400, 401, 404),
                         name=name, summary=summary.split(".")[0])  # fmt: skip


@router.get("/latency/votes", response_model=schemas.VoteLatencyPage, responses=errors(400, 401, 404))
async def latency_votes(
    id: HexId,
    c: Ctx,
    who: Caller,
    request: Request,
    from_: From = None,
    to: To = None,
    page: Annotated[str | None, Query(max_length=20)] = None,
    perPage: Annotated[str | None, Query(max_length=20)] = None,
    threshold: Annotated[str | None, Query(max_length=10)] = None,
) -> Response:
    """Vote deliveries at or above the threshold percentile (p50|p95|p99, default p95) of the window, oldest
    first, paged (page ≥ 1, perPage 1–1000, default 100 — invalid values fall back to the defaults)."""
    _, run_id = await simulation_owner_async(c, who, id)
    p = int(page) if page and page.isascii() and page.isdigit() and int(page) > 0 else 1
    if p > MAX_PAGE:  # a page past this has no rows, and its offset no longer fits the store's 64-bit integers
        raise InputError(f"page is out of range (at most {MAX_PAGE})")
    pp = int(perPage) if perPage and perPage.isascii() and perPage.isdigit() and 1 <= int(perPage) <= 1000 else 100
    th = threshold if threshold in analyzer.THRESHOLDS else "p95"
    win = window(from_, to)
    # whole-run pages never change until the simulation is reprocessed (which clears the cache)
    key = (id, run_id, "votes", p, pp, th)
    cached = c.answers.get(key) if run_id is not None and win == WHOLE_RUN else None
    if cached is None:
        cached = await run_in_threadpool(_votes_page, c, id, run_id, win, p, pp, th)
    return await compressed(c, request, Response(cached, media_type="application/json"),
                            key if win == WHOLE_RUN else None)  # fmt: skip


def _votes_page(c: ApiContext, sim_id: str, run_id: int | None, win: Window, p: int, pp: int, th: str) -> bytes:
    if run_id is None:
        return orjson.dumps({"data": [], "pagination": {"page": p, "perPage": pp, "total": 0, "totalPages": 0}})
    if win != WHOLE_RUN:
        return orjson.dumps(analyzer.round_ms(analyzer.vote_latencies(c.store, run_id, win, page=p, per_page=pp,
                                                                      threshold=th)))
    cut = orjson.loads(answer(c, sim_id, run_id, "vote_thresholds", win).body)[th]
    body = orjson.dumps(analyzer.round_ms(analyzer.vote_latencies(c.store, run_id, win, page=p, per_page=pp,
                                                                  threshold=th, threshold_ns=cut)))  # fmt: skip
    if c.owners.get(sim_id) is not None:
        c.answers.put((sim_id, run_id, "votes", p, pp, th), body)
    return body


_route("/latency/pairwise", "pairwise", list[schemas.PairwiseRow],
       "Vote delivery latency p50/p95/p99 per directed pair (exact, linear interpolation).")
_route("/latency/timeseries", "timeseries", list[schemas.TimeseriesRow],
       "Per height and directed pair: median vote delivery latency.")
_route("/latency/stats", "latency_stats", schemas.LatencyStats,
       "Vote delivery latency histogram (10 equal-width buckets) and per-pair jitter (sample std dev).")
_route("/messages/success_rate", "success_rate", list[schemas.SuccessRow],
       "Per height and directed pair: votes sent, received, and the share received.")
_route("/latency/end_to_end", "end_to_end", list[schemas.EndToEndRow],
       "Per height: round start to complete proposal block at each node, then p50/p95 across nodes.")
_route("/vote/statistics", "vote_statistics", list[schemas.VoteStatRow],
       "Per sender, receiver and vote type: count, p50/p90/p95/p99, max and spike share (≥ 2 × p95).")
_route("/network/latency/stats", "network_pair_stats", list[schemas.NodePairStats],
       "Per node pair: one-hop latency statistics per message type and overall.")
_route("/network/latency/node-stats", "network_node_stats", list[schemas.NodeStats],
       "Per node: messages sent and received, unmatched ones, and peers.")
_route("/network/latency/overview", "network_overview", schemas.Overview,
       "The message type and node with the highest p95 one-hop latency, and a true overall p95.")
