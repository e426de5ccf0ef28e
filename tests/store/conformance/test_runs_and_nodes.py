"""Runs and nodes on every engine: creation, lookup, listing, identity resolution, deletion."""

from __future__ import annotations

import pytest

from bftscope.errors import InputError, NotFoundError
from bftscope.store import Store
from tests.store.rows import batch


def test_runs_are_created_once_and_found_by_name(store: Store) -> None:
    a = store.get_or_create_run("r1", "cometbft")
    assert store.get_or_create_run("r1", "cometbft") == a
    b = store.get_or_create_run("r2", "cometbft")
    assert b.id != a.id and store.get_run("r2") == b
    assert [(r["name"], r["nodes"], r["sources"], r["events"]) for r in store.list_runs()] == [
        ("r1", 0, 0, 0), ("r2", 0, 0, 0)]  # fmt: skip
    with pytest.raises(InputError):
        store.get_or_create_run("", "cometbft")
    with pytest.raises(NotFoundError):
        store.get_run("nope")


def test_nodes_resolve_by_p2p_id_or_validator(store: Store) -> None:
    run = store.get_or_create_run("r1", "cometbft")
    a = store.resolve_node(run.id, p2p_id="aa", validator=None, moniker=None, label="node0")
    b = store.resolve_node(run.id, p2p_id=None, validator="VV", moniker="m", label="node0-wal")
    a2 = store.resolve_node(run.id, p2p_id="aa", validator="WW", moniker=None, label="x")
    assert a.node == a2.node != b.node
    assert a2.validator == "WW" and a2.label == "node0"  # learned, label kept
    assert [n.node for n in store.nodes(run.id)] == [0, 1]
    with pytest.raises(NotFoundError):
        store.get_run("nope")


def test_delete_run_removes_the_run_and_everything_of_it(store: Store) -> None:
    keep, gone = store.get_or_create_run("keep", "cometbft"), store.get_or_create_run("gone", "cometbft")
    for run in (keep, gone):
        node = store.resolve_node(run.id, p2p_id="aa", validator=None, moniker=None, label="n")
        src = store.begin_source(run.id, node.node, "f", "x", f"h-{run.name}", 1)
        store.append_events(run.id, node.node, src.id, batch(4))
        store.finish_source(src.id, lines=4, events=4, skipped={}, warnings=[])
    store.delete_run(gone.id)
    with pytest.raises(NotFoundError):
        store.get_run("gone")
    assert store.nodes(gone.id) == [] and store.sources(gone.id) == []
    assert store.query("SELECT run_id, count(*) FROM events GROUP BY run_id") == [(keep.id, 4)]
    assert [r["name"] for r in store.list_runs()] == ["keep"]
