"""bftscope's own answers for a simulation: what is in it, and the questions the original could not answer.
Served from :mod:`.analytics.answers` (and timeline, participation, topology, compare beside it).

Each is the whole-run answer from the rollups (see ``docs/metrics.md`` for every field):
``/summary`` (time range, nodes, heights, event counts — what to ask for), ``/analytics/vote-matrix``
(signer → receiver propagation), ``/analytics/links`` (one-hop latency and delivery rate per directed
link and message type), ``/analytics/clock-skew`` and ``/analytics/clock-offsets`` (clock offsets with their
intervals and status), ``/analytics/timeline`` (per height, extra rounds with
their reason, step durations), ``/analytics/participation`` (voted / late / nil / missing),
``/analytics/proposers``, ``/analytics/node-ranking``, ``/analytics/topology`` (direct links between nodes, the
shape in words, hops per pair) and ``/compare/{otherId}``.
"""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Path, Request, Response
from starlette.concurrency import run_in_threadpool

from bftscope.api import schemas
from bftscope.api.deps import Caller, Ctx, HexId, sim_for, simulation_owner, simulation_owner_async
from bftscope.api.errors import errors
from bftscope.families.cometbft.analytics import timeline as timeline_
from bftscope.families.cometbft.analytics.analyzer import WHOLE_RUN
from bftscope.families.cometbft.analytics.compare import compare_runs
from bftscope.families.cometbft.analyzer_routes import answer_async, compressed

router = APIRouter(prefix="/v1/simulations/{id}", tags=["analytics"])


def _json(body: Any) -> Response:
    return Response(orjson.dumps(body), media_type="application/json")


@router.get("/summary", response_model=schemas.RunSummary, responses=errors(400, 401, 404))
async def summary(id: HexId, c: Ctx, who: Caller) -> Response:
    """What the simulation holds: status, time and height range, nodes and events by kind."""
    _, run_id = await simulation_owner_async(c, who, id)
    status = c.owners.get((id, "status"))  # cached with the owner once the simulation is settled
    if status is None:
        status = (await run_in_threadpool(sim_for, c, who, id)).status
    counts: dict[str, Any] = {"events": 0, "firstTimestamp": None, "lastTimestamp": None, "firstHeight": None,
                              "lastHeight": None, "nodes": [], "eventsByKind": {}}  # fmt: skip
    if run_id is not None:
        counts = orjson.loads((await answer_async(c, id, run_id, "run_counts", WHOLE_RUN)).body)
    return _json({"simulationId": id, "status": status, **counts})


def _table(path: str, name: str, summary_: str) -> None:
    async def handler(id: HexId, c: Ctx, who: Caller, request: Request) -> Response:
        _, run_id = await simulation_owner_async(c, who, id)
        if run_id is None:
            return _json({"data": []})
        body = bytes((await answer_async(c, id, run_id, name, WHOLE_RUN)).body)
        wrapped = Response(b'{"data":' + body + b"}", media_type="application/json")
        return await compressed(c, request, wrapped, (id, run_id, "table:" + name))

    handler.__doc__ = summary_
    router.add_api_route(path, handler, methods=["GET"], response_model=schemas.Table, responses=errors(400, 401, 404),
                         name=name, summary=summary_.split(".")[0])  # fmt: skip


_table("/analytics/vote-matrix", "vote_matrix",
       "Vote propagation per signer → receiver: first receipt of each vote minus its signer's timestamp.")
_table("/analytics/links", "links", "One-hop delivery latency and delivery rate per directed link and message type.")
_table("/analytics/clock-skew", "clock_skew",
       "Per node pair: clock offset from minimum one-way delays, with its interval and status (estimated or not "
       "determinable) and the evidence.")
_table("/analytics/clock-offsets", "clock_offsets",
       "Per node: clock offset from a reference node, chained over estimated pairs, with interval and status.")
_table("/analytics/proposers", "proposers", "Per validator: rounds designated, proposed, committed, missed.")
_table("/analytics/node-ranking", "node_ranking", "Nodes ranked by how late their votes arrive vs. the median signer.")


@router.get("/analytics/participation", response_model=schemas.Participation, responses=errors(400, 401, 404))
async def participation(id: HexId, c: Ctx, who: Caller) -> Response:
    """Per validator and height/round: voted, late, nil or missing; capture-edge heights apart, with why."""
    _, run_id = await simulation_owner_async(c, who, id)
    if run_id is None:
        return _json({"validators": {}, "missed": [], "late": [], "edge": []})
    return await answer_async(c, id, run_id, "participation", WHOLE_RUN)


@router.get("/analytics/topology", response_model=schemas.Topology, responses=errors(400, 401, 404))
async def topology(id: HexId, c: Ctx, who: Caller) -> Response:
    """Who is directly connected to whom (from the messages each node received), the shape in words, and
    every node pair's hop count (one hop or relayed)."""
    _, run_id = await simulation_owner_async(c, who, id)
    if run_id is None:
        return _json({"nodes": [], "edges": [], "source": None, "shape": "unknown", "pairs": [], "outside_peers": 0,
                      "description": "nothing ingested yet", "unidentified_nodes": []})  # fmt: skip
    return await answer_async(c, id, run_id, "topology", WHOLE_RUN)


@router.get("/analytics/timeline/{height}", response_model=schemas.Table, responses=errors(400, 401, 404))
async def height_detail(id: HexId, height: Annotated[int, Path(ge=0, le=2**62)], c: Ctx, who: Caller) -> Response:
    """One height at every node: steps entered (round, step, ms since the node started the height, ms in the
    step), timeouts fired, and when it committed."""
    _, run_id = await simulation_owner_async(c, who, id)
    if run_id is None:
        return _json({"data": []})
    return _json({"data": await run_in_threadpool(timeline_.height_detail, c.store, run_id, height)})


@router.get("/analytics/timeline", response_model=schemas.Timeline, responses=errors(400, 401, 404))
async def timeline(id: HexId, c: Ctx, who: Caller) -> Response:
    """Per height (rounds, duration, commit spread, timeouts by step), every extra round with its reason,
    and step durations per node."""
    _, run_id = await simulation_owner_async(c, who, id)
    if run_id is None:
        return _json({"heights": [], "extraRounds": [], "stepDurations": []})
    names = ("heights", "extra_rounds", "step_durations")
    parts = [(await answer_async(c, id, run_id, n, WHOLE_RUN)).body for n in names]
    return Response(b'{"heights":%s,"extraRounds":%s,"stepDurations":%s}' % tuple(parts),
                    media_type="application/json")  # fmt: skip


@router.get("/compare/{otherId}", response_model=schemas.Comparison, responses=errors(400, 401, 404))
def compare(id: HexId, otherId: HexId, c: Ctx, who: Caller) -> Response:
    """This simulation (A, the baseline) against another (B): every measurement, deltas, plain verdicts."""
    _, a = simulation_owner(c, who, id)
    _, b = simulation_owner(c, who, otherId)
    if a is None or b is None:
        return _json({"verdicts": [], "changes": []})
    result = compare_runs(c.store, a, b)
    return _json({"verdicts": result["verdicts"], "changes": result["changes"]})
