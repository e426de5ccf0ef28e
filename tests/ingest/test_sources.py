"""Content identity within one ingest and across ingests: the same bytes twice, a log that grew,
and runs that an ingest left empty."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bftscope.config import Settings
from bftscope.errors import NothingIngestedError
from bftscope.ingest.pipeline import ingest
from bftscope.store import DuckDBStore


def _store(settings: Settings) -> DuckDBStore:
    return DuckDBStore.open(settings.store_path, settings)


def _count(store: DuckDBStore, run: str) -> int:
    return int(store.query("SELECT count(*) FROM events WHERE run_id = ?", [store.get_run(run).id])[0][0])


def test_the_same_bytes_twice_in_one_ingest(json_debug_lines: Path, tmp_path: Path, settings: Settings) -> None:
    for d in ("a", "b"):
        (tmp_path / d).mkdir()
        shutil.copy(json_debug_lines, tmp_path / d / "node0.log")
    shutil.copy(json_debug_lines, tmp_path / "copy-of-node0.log")
    store = _store(settings)
    result = ingest(store, "twice", [tmp_path / "a", tmp_path / "b", tmp_path / "copy-of-node0.log"], settings)
    statuses = [(f.name, f.status, f.reason) for f in result.files]
    assert [s[1] for s in statuses].count("ingested") == 1
    assert result.events == 28 and _count(store, "twice") == 28
    first = next(f.name for f in result.files if f.status == "ingested")
    dups = [f for f in result.files if f.status == "duplicate"]
    assert len(dups) == 2
    for f in dups:
        assert f.duplicate_of == first and first in (f.reason or "")
    store.close()


def test_a_log_that_grew_is_read_from_where_it_stopped(wal_testnet: Path, tmp_path: Path, settings: Settings) -> None:
    real = (wal_testnet / "node0" / "tendermint.log").read_bytes()
    cut = real.index(b"\n", len(real) // 2) + 1  # a line boundary near the middle
    store = _store(settings)
    once = ingest(store, "once", [wal_testnet / "node0" / "tendermint.log"], settings)
    grown = tmp_path / "node0" / "tendermint.log"
    grown.parent.mkdir()
    grown.write_bytes(real[:cut])
    first = ingest(store, "grew", [grown], settings)
    grown.write_bytes(real)  # the node kept running
    second = ingest(store, "grew", [grown], settings)
    (f,) = second.files
    assert f.status == "ingested" and f.reason == f"appended: read {len(real) - cut:,} new bytes"
    assert 0 < first.events < once.events
    assert first.events + second.events == once.events == _count(store, "grew")
    q = "SELECT kind, ts, height, seq FROM events WHERE run_id = ? ORDER BY seq"
    assert store.query(q, [store.get_run("grew").id]) == store.query(q, [store.get_run("once").id])
    # the same grown file again adds nothing
    again = ingest(store, "grew", [grown], settings)
    assert {x.status for x in again.files} == {"duplicate"} and _count(store, "grew") == once.events
    store.close()


def test_a_log_that_grew_from_a_cut_line(json_debug_lines: Path, tmp_path: Path, settings: Settings) -> None:
    real = json_debug_lines.read_bytes()
    cut = real.index(b"\n", len(real) // 2) + 20  # inside a line: the node was writing it
    grown = tmp_path / "node.log"
    grown.write_bytes(real[:cut])
    store = _store(settings)
    ingest(store, "grew", [grown], settings)
    grown.write_bytes(real)
    second = ingest(store, "grew", [grown], settings)
    assert (second.files[0].reason or "").startswith("appended: read ")
    assert _count(store, "grew") == 28  # the cut line is read whole once it is complete, and only once
    sources = store.sources(store.get_run("grew").id)
    assert sum(s.events for s in sources) == 28
    store.close()


def test_an_ingest_that_ingested_nothing_leaves_no_run(tmp_path: Path, settings: Settings) -> None:
    (tmp_path / "a.log").write_bytes(b"hello\nworld\n")
    store = _store(settings)
    with pytest.raises(NothingIngestedError):
        ingest(store, "empty", [tmp_path / "a.log"], settings)
    with pytest.raises(NothingIngestedError):
        ingest(store, "empty2", [tmp_path / "missing"], settings)
    assert store.list_runs() == []
    store.close()
