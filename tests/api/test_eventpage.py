"""The events page rendered by DuckDB equals the readable Python definition (``event_json``), event for event,
on a simulated JSON-log run (every log kind) and on the real WAL testnet; and bounded-window paging returns
exactly the plain keyset pages, whatever the filters."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from bftscope.api.eventpage import event_json, fetch_page
from bftscope.cometbft.simulator import build_config, simulate
from bftscope.config import Settings
from bftscope.ingest.pipeline import ingest
from bftscope.store import DuckDBStore
from bftscope.store.eventquery import EventFilter, list_events
from tests.conftest import require_data


def _strip(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _strip(v) for k, v in x.items() if v is not None}
    return x


@pytest.fixture(scope="module", params=["sim", "wal"])
def run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[DuckDBStore, int]:
    root = tmp_path_factory.mktemp(request.param)
    if request.param == "wal":
        source = require_data("cometbft/tendermint-v0.34-4node-wal")
    else:
        source = root / "net"
        simulate(build_config(nodes=4, heights=6, seed=3, escalations=[3]), source)
    settings = Settings(data_dir=root / "store")
    store = DuckDBStore.open(settings.store_path, settings)
    ingest(store, "r", [Path(source)], settings)
    return store, store.get_run("r").id


def _span(store: DuckDBStore, rid: int) -> tuple[int, int, int]:
    n, lo, hi = store.query("SELECT count(*), min(ts), max(ts) FROM events WHERE run_id = ?", [rid])[0]
    return int(n), int(lo), int(hi)


def test_sql_rendering_equals_python_definition(run: tuple[DuckDBStore, int]) -> None:
    store, rid = run
    nodes = store.nodes(rid)
    ids = {n.node: n.p2p_id or n.label for n in nodes}
    labels = {n.node: n.label for n in nodes}
    vals = {n.node: n.validator for n in nodes}
    want = [event_json(e, ids, labels, vals) for e in list_events(store, rid, EventFilter(), limit=10**7)]
    got = [orjson.loads(r[2]) for r in fetch_page(store, rid, EventFilter(), limit=10**7, after=None, before=None,
                                                  offset=0, span=_span(store, rid))]  # fmt: skip
    assert len(got) == len(want) > 1000
    kinds = set()
    for g, w in zip(got, want, strict=True):
        assert _strip(g) == _strip(w), (g, w)
        kinds.add(w["eventType"])
    assert {"enteringNewHeight", "enteringPrecommitStep", "receiveVote"} & kinds


@pytest.mark.parametrize("flt", [EventFilter(), EventFilter(kinds=["step"]), EventFilter(nodes=[1], min_height=3)])
def test_bounded_pages_equal_keyset_pages(run: tuple[DuckDBStore, int], flt: EventFilter) -> None:
    store, rid = run
    span = _span(store, rid)
    everything = [(e["ts"], e["id"]) for e in list_events(store, rid, flt, limit=10**7)]
    seen: list[tuple[int, int]] = []
    after = None
    while True:
        page = fetch_page(store, rid, flt, limit=97, after=after, before=None, offset=0, span=span)
        seen += [(r[0], r[1]) for r in page]
        if len(page) < 97:
            break
        after = (page[-1][0], page[-1][1])
    assert seen == everything
    mid = everything[len(everything) // 2]
    back = fetch_page(store, rid, flt, limit=50, after=None, before=mid, offset=0, span=span)
    i = everything.index(mid)
    assert [(r[0], r[1]) for r in back] == everything[max(0, i - 50):i]
    seg = fetch_page(store, rid, flt, limit=40, after=None, before=None, offset=80, span=span)
    assert [(r[0], r[1]) for r in seg] == everything[80:120]
