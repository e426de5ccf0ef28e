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


def _versions(real: bytes, tmp_path: Path, cuts: dict[str, int]) -> list[Path]:
    """The same node's log copied at several moments, each in its own folder (named for the order)."""
    paths = []
    for folder, cut in cuts.items():
        (tmp_path / folder).mkdir()
        path = tmp_path / folder / "node0.log"
        path.write_bytes(real[:cut])
        paths.append(path)
    return paths


@pytest.mark.parametrize("shorter_first", [True, False])
def test_a_log_and_its_grown_copy_in_one_ingest(
    wal_testnet: Path, tmp_path: Path, settings: Settings, shorter_first: bool
) -> None:
    """Found end to end: an API simulation holding a log and, re-uploaded later, its longer version
    (both are processed in one ingest) counted the first half twice (86 events instead of 58)."""
    real = (wal_testnet / "node0" / "tendermint.log").read_bytes()
    cut = real.index(b"\n", len(real) // 2) + 1
    cuts = {"a": cut, "b": len(real)} if shorter_first else {"a": len(real), "b": cut}
    paths = _versions(real, tmp_path, cuts)
    store = _store(settings)
    once = ingest(store, "once", [wal_testnet / "node0" / "tendermint.log"], settings)
    both = ingest(store, "both", paths, settings)
    assert _count(store, "both") == once.events == both.events
    q = "SELECT kind, ts, height, seq FROM events WHERE run_id = ? ORDER BY seq"
    assert store.query(q, [store.get_run("both").id]) == store.query(q, [store.get_run("once").id])
    by_name = {str(f.name): f for f in both.files}
    short = next(f for f in both.files if f.size == cut)
    if shorter_first:
        assert {f.status for f in both.files} == {"ingested"}
        longer = next(f for f in both.files if f.size == len(real))
        assert longer.reason == f"appended: read {len(real) - cut:,} new bytes" and longer.start == cut
    else:
        assert short.status == "duplicate" and short.duplicate_of is not None
        assert "beginning of" in (short.reason or ""), by_name
    store.close()


def test_three_copies_of_a_growing_log_cut_inside_lines(
    json_debug_lines: Path, tmp_path: Path, settings: Settings
) -> None:
    real = json_debug_lines.read_bytes()
    third = len(real) // 3
    cuts = {"a": real.index(b"\n", third) + 7, "b": real.index(b"\n", 2 * third) + 9, "c": len(real)}
    store = _store(settings)
    result = ingest(store, "three", _versions(real, tmp_path, cuts), settings)
    assert _count(store, "three") == result.events == 28  # each cut line read whole once, and only once
    assert sum(s.events for s in store.sources(store.get_run("three").id)) == 28
    store.close()


def test_a_log_and_its_gzipped_copy_count_once(wal_testnet: Path, tmp_path: Path, settings: Settings) -> None:
    """Found end to end: ``node0.log`` and ``node0.log.gz`` (the same lines) in one ingest gave 116
    events instead of 58, and an API simulation holding both did the same: a ``.gz`` is known by the
    bytes it decompresses to, like the plain file."""
    import gzip

    real = (wal_testnet / "node0" / "tendermint.log").read_bytes()
    (tmp_path / "node0.log").write_bytes(real)
    (tmp_path / "node0.log.gz").write_bytes(gzip.compress(real))
    store = _store(settings)
    once = ingest(store, "once", [tmp_path / "node0.log"], settings).events
    both = ingest(store, "both", [tmp_path / "node0.log", tmp_path / "node0.log.gz"], settings)
    assert _count(store, "both") == once == 58
    assert sorted(f.status for f in both.files) == ["duplicate", "ingested"]
    # across ingests, in either order
    for first, then in (("node0.log.gz", "node0.log"), ("node0.log", "node0.log.gz")):
        run = f"after-{first}"
        ingest(store, run, [tmp_path / first], settings)
        (f,) = ingest(store, run, [tmp_path / then], settings).files
        assert f.status == "duplicate" and f.duplicate_of == first, f
        assert _count(store, run) == once
    store.close()
