"""The casper-sidecar's outbound SSE (live-sources.md §C2 "Sidecar outbound SSE"), re-broadcast by every API
instance: ``GET /v1/casper/{network}/events/main|deploys|sigs`` and the legacy ``…/events`` (and the same at the
root for ``BFTSCOPE_CASPER_ROOT_NETWORK``, public).

A stream opens with ``data:{"ApiVersion":…}`` (no id), then sends each new entity of its path as the node's JSON
exactly as received, with bftscope's own increasing id (the entity's ``out_id``, not the node's), and a ``:``
comment every ``KEEPALIVE_S`` seconds. ``?start_from=<id>`` (the only query allowed: exactly one key, a u32,
else 422 with the sidecar's text) first replays the entities with ``id >= start_from``: those still in the
instance's ring buffer (fed by its hub from whichever instance ingested them), and older ones from
``casper_payloads`` in the instance's own store (waiting up to ``STORE_CATCH_UP_S`` for entities already
published but not yet inserted by a journaled sink); then it goes live. Replay and live share one sequence: an
entity already sent is never sent again, and none published between the two is missed (the client is
registered with the hub in the same step as the ring is read). An unknown path is 404 with the sidecar's text;
more than ``BFTSCOPE_CASPER_MAX_SUBSCRIBERS`` streams of a network, 503. A client that falls
``BFTSCOPE_CASPER_SUBSCRIBER_QUEUE`` entities behind has its stream ended; it resumes with ``start_from``.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import AsyncIterator, Iterable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from bftscope.api.auth import Caller
from bftscope.api.context import ApiContext
from bftscope.api.errors import errors
from bftscope.control.networks import run_id_of, run_name
from bftscope.errors import BusyError, FormatError, NotFoundError
from bftscope.families.casper import serving
from bftscope.families.casper.hub import Client, Hub
from bftscope.families.casper.model import CHANNELS

__all__ = ["API_VERSION", "KEEPALIVE_S", "router", "sse_frame"]

router = APIRouter()

API_VERSION = "1.5.2"  # the 1.x event shapes re-broadcast (the sidecar's minimum node version)
KEEPALIVE_S = 15.0
STORE_PAGE = 1000
STORE_CATCH_UP_S = 5.0  # how long a replay waits for the store to hold what the ring does not
BAD_PATH = "invalid path: expected '/events/main', '/events/deploys' or '/events/sigs'"
BAD_QUERY = "invalid query: expected single field 'start_from=<EVENT ID>'"
BUSY = "server has reached limit of subscribers"
_U32 = 2**32 - 1
_SSE: dict[int | str, dict[str, Any]] = {200: {"content": {"text/event-stream": {}}, "description": "The event stream"}}


def sse_frame(out_id: int | None, raw: bytes) -> bytes:
    """One SSE event: each line of the JSON as a ``data:`` line, then ``id:`` (none for ApiVersion)."""
    lines = raw.splitlines() or [b""]
    body = b"".join(b"data:" + line + b"\n" for line in lines)
    return body + (b"id:%d\n\n" % out_id if out_id is not None else b"\n")


def _start_from(request: Request) -> int | None:
    items = request.query_params.multi_items()
    if not items and not request.url.query:
        return None
    if len(items) != 1 or items[0][0] != "start_from" or not items[0][1].isdigit() or int(items[0][1]) > _U32:
        raise FormatError(BAD_QUERY)
    return int(items[0][1])


def _store_page(c: ApiContext, network: str, path: str, lo: int, hi: int | None) -> tuple[list[tuple[int, bytes]], int]:
    """Stored entities of ``path`` with ``lo <= out_id < hi`` (oldest first; of at most :data:`STORE_PAGE` rows
    read) and the last ``out_id`` read (``lo - 1`` when none was; -1 when this instance stores no such network)."""
    run_id = run_id_of(c.store, run_name(network))
    if run_id is None:
        return [], -1
    params: dict[str, Any] = {"run": run_id, "lo": lo, "n": STORE_PAGE}
    if hi is not None:
        params["hi"] = hi
    rows: list[Any] = c.store.query(
        "SELECT out_id, type, channel, raw FROM casper_payloads WHERE run_id = :run AND out_id >= :lo"
        + ("" if hi is None else " AND out_id < :hi") + " ORDER BY out_id LIMIT :n", params)  # fmt: skip
    types = CHANNELS["events"] if path == "events" else None
    out = [(int(i), str(raw).encode()) for i, t, ch, raw in rows if (t in types if types is not None else ch == path)]
    return out, int(rows[-1][0]) if rows else lo - 1


async def _stream(c: ApiContext, hub: Hub, network: str, path: str, start_from: int | None, client: Client,
                  ring: list[Any], ring_first: int | None) -> AsyncIterator[bytes]:  # fmt: skip
    try:
        yield sse_frame(None, b'{"ApiVersion":"%s"}' % API_VERSION.encode())
        last = -1 if start_from is None else start_from - 1
        if start_from is not None and (ring_first is None or start_from < ring_first):
            waited = 0.0
            while True:  # older than the ring: from this instance's store, a page at a time
                page, read = await run_in_threadpool(_store_page, c, network, path, last + 1, ring_first)
                for out_id, raw in page:
                    yield sse_frame(out_id, raw)
                if read > last:
                    last = read
                    continue
                if read < 0 or ring_first is None or last >= ring_first - 1 or waited >= STORE_CATCH_UP_S:
                    break
                # the ring starts beyond what the store holds: published entities the store has not inserted
                # yet (a journaled sink inserts every ~0.2 s); wait for them rather than skip them
                await asyncio.sleep(0.05)
                waited += 0.05
        for out_id, frame in _frames(ring, last):
            last = out_id
            yield frame
        while True:
            try:
                batch = await asyncio.wait_for(client.take(), KEEPALIVE_S)
            except TimeoutError:
                yield b":\n\n"
                continue
            if batch is None:
                return
            for out_id, frame in _frames(batch, last):
                last = out_id
                yield frame
    finally:
        hub.remove(client)


def _remove_soon(loop: asyncio.AbstractEventLoop, hub: Hub, client: Client) -> None:
    """On the hub's loop, whichever thread the garbage collector ran in."""
    if not client.closed:
        with contextlib.suppress(RuntimeError):  # the loop is closed: so is the hub
            loop.call_soon_threadsafe(hub.remove, client)


def _frames(entities: Iterable[Any], last: int) -> Iterable[tuple[int, bytes]]:
    """``(out_id, frame)`` of the entities after ``last`` (each id once: replay and live share one sequence)."""
    for e in entities:
        if e.out_id > last:
            last = e.out_id
            yield e.out_id, sse_frame(e.out_id, bytes(e.raw))


async def _open(request: Request, c: ApiContext, network: str, path: str) -> StreamingResponse:
    if path not in ("main", "deploys", "sigs", "events"):
        raise NotFoundError(BAD_PATH)
    start_from = _start_from(request)
    hub = serving.hub_for(c, network)
    if hub.stats.sse_clients >= c.settings.casper_max_subscribers:
        raise BusyError(BUSY)
    ring_first = hub.ring_first()
    client, ring = hub.add_sse(path, start_from)  # the same step as the ring is read: no batch falls between
    stream = _stream(c, hub, network, path, start_from, client, ring, ring_first)
    # the stream's own finally removes the client; this, once the stream is gone, also when it never started (a
    # client that left before the first byte)
    weakref.finalize(stream, _remove_soon, asyncio.get_running_loop(), hub, client)
    return StreamingResponse(stream,
                             media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})  # fmt: skip


_RESPONSES: dict[int | str, dict[str, Any]] = {**_SSE, **errors(401, 404, 422, 503)}


@router.get(
    "/v1/casper/{network}/events/{path}", response_class=StreamingResponse, responses=_RESPONSES, tags=["casper"]
)
async def events(request: Request, network: str, path: str, who: Caller) -> StreamingResponse:
    """A Casper network's new entities as the sidecar's SSE (``path``: main, deploys or sigs), from
    ``?start_from=<id>`` if given."""
    c: ApiContext = request.app.state.ctx
    name = await run_in_threadpool(serving.owned_network, c, who, network)
    return await _open(request, c, name, path)


@router.get("/v1/casper/{network}/events", response_class=StreamingResponse, responses=_RESPONSES, tags=["casper"])
async def legacy_events(request: Request, network: str, who: Caller) -> StreamingResponse:
    """The legacy ``/events`` stream (BlockAdded, DeployProcessed, Fault, FinalitySignature, Shutdown)."""
    c: ApiContext = request.app.state.ctx
    name = await run_in_threadpool(serving.owned_network, c, who, network)
    return await _open(request, c, name, "events")


@router.get("/events/{path}", include_in_schema=False)
async def root_events(request: Request, path: str) -> StreamingResponse:
    c: ApiContext = request.app.state.ctx
    return await _open(request, c, serving.root_network(c), path)


@router.get("/events", include_in_schema=False)
async def root_legacy_events(request: Request) -> StreamingResponse:
    c: ApiContext = request.app.state.ctx
    return await _open(request, c, serving.root_network(c), "events")
