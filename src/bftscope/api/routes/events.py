"""``GET /v1/simulations/{id}/events``: every event of a simulation, paged by a stable cursor.

Parameters as the original (``shared/reference/cometbft-analyzer.md`` §4), done right: ``limit`` 1–50 000
(else 10 000), ``cursor`` (continue after), ``before`` (the page just before), ``segment`` (skip
``(segment − 1) × limit`` events after the filters and cursor), ``includeTotalCount=true``, ``from``/``to``
(RFC 3339), plus filters ``node`` (label or p2p id), ``kind`` and ``height``/``minHeight``/``maxHeight``
(repeat ``node``/``kind`` or separate values with commas). The confirmed exchanges (``p2pVote``, …) are entries
of kind ``delivery``, on their receiver at the receive time (api/eventpage.py).
"""

from __future__ import annotations

from typing import Annotated

import orjson
from fastapi import APIRouter, Query, Response

from bftscope.api import schemas
from bftscope.api.deps import Caller, Ctx, HexId, simulation_owner
from bftscope.api.errors import errors
from bftscope.api.eventpage import decode_cursor, encode_cursor, renderer
from bftscope.errors import InputError
from bftscope.families import registry
from bftscope.store.eventquery import DELIVERY, EventFilter, count_matching, event_span
from bftscope.timeutil import parse_rfc3339_ns

router = APIRouter(prefix="/v1", tags=["events"])

Str = Annotated[str | None, Query(max_length=200)]
Many = Annotated[list[str] | None, Query(max_length=100)]


def _time(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return parse_rfc3339_ns(value)
    except ValueError:
        raise InputError("invalid time range") from None


INT64_MAX = 2**63 - 1
MAX_SEGMENT = INT64_MAX // 50_000  # (segment − 1) × limit must stay a 64-bit offset


def _int(value: str | None, name: str, bound: int = INT64_MAX) -> int | None:
    """A query integer, refused (400) past ``±bound``: the store's columns are 64-bit, and a larger value
    would fail inside the query as a 500."""
    if value is None or value == "":
        return None
    try:
        n = int(value)
    except ValueError:
        raise InputError(f"{name} must be an integer") from None
    if not -bound <= n <= bound:
        raise InputError(f"{name} is out of range (at most {bound} either way)")
    return n


def _split(values: list[str] | None) -> list[str]:
    return [v.strip() for raw in values or [] for v in raw.split(",") if v.strip()]


@router.get("/simulations/{id}/events", response_model=schemas.EventsPage, responses=errors(400, 401, 404))
def events(
    id: HexId,
    c: Ctx,
    who: Caller,
    limit: Str = None,
    cursor: Str = None,
    before: Str = None,
    segment: Str = None,
    includeTotalCount: Str = None,
    from_: Annotated[str | None, Query(alias="from", max_length=64)] = None,
    to: Str = None,
    node: Many = None,
    kind: Many = None,
    height: Str = None,
    minHeight: Str = None,
    maxHeight: Str = None,
) -> Response:
    _, run_id = simulation_owner(c, who, id)
    # a limit out of 1–50 000 falls back to the default, as the original did, however large it is
    n = int(limit) if limit and limit.isascii() and limit.lstrip("-").isdigit() else None
    size = n if n is not None and 1 <= n <= 50_000 else 10_000
    seg = _int(segment, "segment", MAX_SEGMENT) if segment and segment.lstrip("-").isdigit() else None
    offset = (seg - 1) * size if seg and seg > 0 else 0
    after = decode_cursor(cursor, "cursor", after=True) if cursor else None
    back = decode_cursor(before, "before", after=False) if before else None
    nodes = c.store.nodes(run_id) if run_id is not None else []
    family = registry.family_of_run(c.store, run_id) if run_id is not None else None
    by_name = {x.label: x.node for x in nodes} | {a: x.node for x in nodes for a in family.aliases(x)} \
        if family is not None else {}  # fmt: skip
    kinds = _split(kind)
    all_kinds = registry.all_kinds()
    if unknown := [k for k in kinds if k not in all_kinds and k != DELIVERY]:
        raise InputError(f"unknown kind {unknown[0]!r}; kinds: {', '.join((*all_kinds, DELIVERY))}")
    wanted_nodes = _split(node)
    if unknown := [x for x in wanted_nodes if x not in by_name]:
        raise InputError(f"no node {unknown[0]!r} in this simulation")
    h = _int(height, "height")
    flt = EventFilter(nodes=[by_name[x] for x in wanted_nodes], kinds=kinds,
                      min_height=h if h is not None else _int(minHeight, "minHeight"),
                      max_height=h if h is not None else _int(maxHeight, "maxHeight"),
                      from_ns=_time(from_), to_ns=_time(to))  # fmt: skip
    total = None
    rows: list[tuple[int, int, str]] = []
    if run_id is not None:
        span = c.answers.get((id, run_id, "span"))
        if span is None:
            span = event_span(c.store, run_id)
            if c.owners.get(id) is not None:
                c.answers.put((id, run_id, "span"), span)
        # the run's lookups, kept like its span (both dropped when the simulation is reprocessed or deleted)
        tables = c.answers.get((id, run_id, "lookups"))
        if tables is None:
            tables = renderer(c.store, run_id).lookup_tables(c.store, run_id)
            if c.owners.get(id) is not None:
                c.answers.put((id, run_id, "lookups"), tables)
        rows = renderer(c.store, run_id).fetch_page(c.store, run_id, flt, limit=size + 1,
                                                    after=None if back else after, before=back, offset=offset,
                                                    span=span, tables=tables)  # fmt: skip
        if includeTotalCount == "true":
            total = count_matching(c.store, run_id, flt)
    elif includeTotalCount == "true":
        total = 0
    if back:  # the page just before: the extra row is at the front
        has_prev, page = len(rows) > size, rows[-size:]
        has_next = True
    else:
        has_next, page = len(rows) > size, rows[:size]
        has_prev = bool(after) or offset > 0
    first, last = (page[0], page[-1]) if page else (None, None)
    pagination = {
        "limit": size,
        "hasNext": has_next and last is not None,
        "hasPrevious": has_prev and first is not None,
        "nextCursor": encode_cursor(last[0], last[1]) if has_next and last else None,
        "previousCursor": encode_cursor(first[0], first[1]) if has_prev and first else None,
        "totalCount": total,
    }
    body = b'{"data":[' + ",".join(r[2] for r in page).encode() + b'],"pagination":' + orjson.dumps(pagination) + b"}"
    return Response(body, media_type="application/json")
