"""Sources and event appends on every engine: ids, paging, bound filters, held rows, trims, continuations."""

from __future__ import annotations

import pyarrow as pa
import pytest

from bftscope.errors import StoreError
from bftscope.store import Store
from bftscope.store.eventquery import EventFilter, list_events
from tests.store.conformance.conftest import Opener
from tests.store.rows import batch


def test_append_assigns_ids_and_cursor_pages_without_repeats(store: Store) -> None:
    run = store.get_or_create_run("r", "cometbft")
    node = store.resolve_node(run.id, p2p_id="aa", validator=None, moniker=None, label="n")
    src = store.begin_source(run.id, node.node, "f.log", "cometbft-json", "h1", 10)
    assert store.append_events(run.id, node.node, src.id, batch(50)) == 50
    assert store.append_events(run.id, node.node, src.id, batch(25, ts0=1_005)) == 25
    store.finish_source(src.id, lines=75, events=75, skipped={"not JSON": 2}, warnings=[])
    ids = [r[0] for r in store.query("SELECT id FROM events ORDER BY id")]
    assert ids == list(range(1, 76))
    seen: list[int] = []
    after = None
    while True:
        page = list_events(store, run.id, EventFilter(), limit=7, after=after)
        if not page:
            break
        seen.extend(e["id"] for e in page)
        after = (page[-1]["ts"], page[-1]["id"])
    assert sorted(seen) == ids and len(seen) == len(set(seen))  # every event exactly once
    ordered = [r[0] for r in store.query("SELECT id FROM events ORDER BY ts, id")]
    assert seen == ordered
    # `before` returns the page just before a position
    pos = (page_ts := store.query("SELECT ts, id FROM events ORDER BY ts, id LIMIT 1 OFFSET 40")[0])
    prev = list_events(store, run.id, EventFilter(), limit=5, before=(pos[0], pos[1]))
    assert [e["id"] for e in prev] == ordered[35:40]
    assert page_ts
    assert store.find_source(run.id, "h1").skipped == {"not JSON": 2}  # type: ignore[union-attr]


def test_filters_are_bound_parameters(store: Store) -> None:
    run = store.get_or_create_run("r", "cometbft")
    src = store.begin_source(run.id, 0, "f", "x", "h", 1)
    store.append_events(run.id, 0, src.id, batch(10))
    evil = "step' OR '1'='1"
    assert list_events(store, run.id, EventFilter(kinds=[evil])) == []
    assert len(list_events(store, run.id, EventFilter(kinds=["step"], min_height=3, max_height=5))) == 3


def test_named_parameters_are_written_with_a_colon(store: Store) -> None:
    # the portable spelling callers use; each engine binds it its own way (casts and literals untouched)
    assert store.query("SELECT :x + 1, CAST(:x AS VARCHAR) || '12:30', 2::BIGINT", {"x": 7}) == [(8, "712:30", 2)]
    assert store.query_arrow("SELECT :x AS x", {"x": 7}).to_pylist() == [{"x": 7}]
    assert store.execute("SELECT :a * :b", {"a": 6, "b": 7}) == [(42,)]


def test_failed_source_leaves_nothing(store: Store) -> None:
    run = store.get_or_create_run("r", "cometbft")
    src = store.begin_source(run.id, 0, "f", "x", "h", 1)
    store.append_events(run.id, 0, src.id, batch(10))
    store.discard_source(src.id)
    assert store.query("SELECT count(*) FROM events")[0][0] == 0
    assert store.find_source(run.id, "h") is None


def test_a_complete_source_cannot_begin_again_and_a_half_ingested_one_restarts(store: Store) -> None:
    run = store.get_or_create_run("r", "cometbft")
    half = store.begin_source(run.id, 0, "f", "x", "h", 1)
    store.append_events(run.id, 0, half.id, batch(6))
    again = store.begin_source(run.id, 0, "f", "x", "h", 1)  # the earlier attempt is discarded
    assert store.query("SELECT count(*) FROM events")[0][0] == 0
    store.append_events(run.id, 0, again.id, batch(3))
    store.finish_source(again.id, lines=3, events=3, skipped={}, warnings=["w"])
    assert [(s.id, s.status, s.events, s.warnings) for s in store.sources(run.id)] == [
        (again.id, "complete", 3, ["w"])]  # fmt: skip
    with pytest.raises(StoreError):
        store.begin_source(run.id, 0, "f", "x", "h", 1)


def test_trim_and_continuable_sources(store: Store) -> None:
    run = store.get_or_create_run("r", "cometbft")
    src = store.begin_source(run.id, 0, "f", "fmt", "h1", 100, prefix_len=80, prefix_hash="p80")
    store.append_events(run.id, 0, src.id, batch(10))
    store.finish_source(src.id, lines=10, events=10, skipped={}, warnings=[])
    assert store.trim_source(src.id, 7) == 3  # the events of seq 7, 8 and 9 (one cut line)
    assert store.query("SELECT max(seq), count(*) FROM events") == [(6, 7)]
    trimmed = store.sources(run.id)[0]
    assert (trimmed.events, trimmed.lines) == (7, 9)
    assert [s.id for s in store.continuable_sources(run.id, "fmt", 120)] == [src.id]
    assert store.continuable_sources(run.id, "fmt", 79) == []  # shorter than the prefix
    assert store.continuable_sources(run.id, "other", 120) == []


def test_held_rows_are_never_missed(open_engine: Opener) -> None:
    """Bulk appends may hold rows back; a flush, any write and closing the store write them."""
    store = open_engine()
    run = store.get_or_create_run("r", "cometbft")
    a = store.begin_source(run.id, 0, "a", "x", "ha", 1)
    b = store.begin_source(run.id, 0, "b", "x", "hb", 1)
    chunk = pa.concat_tables([batch(1000)] * 3)
    for src in (a, b, a, b):
        store.append_events(run.id, 0, src.id, chunk, hold_partial=True)
    store.flush_events()
    assert store.query("SELECT count(*) FROM events")[0][0] == 12_000
    assert [r[0] for r in store.query("SELECT id FROM events ORDER BY id")] == list(range(1, 12_001))
    store.append_events(run.id, 0, b.id, batch(10), hold_partial=True)
    store.discard_source(b.id)  # held rows of a discarded source go too
    assert store.query("SELECT source, count(*) FROM events GROUP BY source") == [(a.id, 6_000)]
    store.append_events(run.id, 0, a.id, batch(7), hold_partial=True)
    store.set_derived_version(run.id, 3)  # any write first writes what is held
    assert store.query("SELECT count(*) FROM events")[0][0] == 6_007
    store.append_events(run.id, 0, a.id, batch(5), hold_partial=True)
    store.finish_source(a.id, lines=6_012, events=6_012, skipped={}, warnings=[])
    store.close()  # closing writes held rows
    store = open_engine()
    assert store.query("SELECT count(*) FROM events")[0][0] == 6_012
