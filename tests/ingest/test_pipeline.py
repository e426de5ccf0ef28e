"""End-to-end ingest: real testnet folder → store; content identity; gz; bad input; nothing ingestable."""

from __future__ import annotations

import gzip
import json
import shutil
from contextlib import AbstractContextManager
from pathlib import Path

import pytest

from bftscope.config import Settings
from bftscope.errors import NothingIngestedError
from bftscope.ingest.pipeline import ingest
from bftscope.store import DuckDBStore

GENESIS_NAMES = {
    "5917B48A13EFF68A47E9C309518DEB3E648749EE": "node0",
    "678F22DB65C76FFC656CB74DF97F9457C5AC29AC": "node1",
    "4A91D054093CA19FF4D23C780CE92FA37A5C275E": "node2",
    "032DF8EFA3F8F921BFCAD4E72AC251A5760F3E4C": "node3",
}


def _store(settings: Settings) -> DuckDBStore:
    return DuckDBStore.open(settings.store_path, settings)


def test_real_testnet_folder(wal_testnet: Path, settings: Settings) -> None:
    store = _store(settings)
    said: list[str] = []
    limits: list[str] = []
    set_limit = store.memory_limit

    def recorded(limit: str) -> AbstractContextManager[None]:
        limits.append(limit)
        return set_limit(limit)

    store.memory_limit = recorded  # type: ignore[method-assign]
    result = ingest(store, "v034", [wal_testnet], settings, on_phase=said.append)
    assert said == ["derived tables", "metric rollups"]  # what runs after parsing, announced in order
    # DuckDB's buffer pool is kept small while the parsers run, larger once they have exited
    assert limits == [settings.ingest_parse_memory_limit, settings.ingest_derive_memory_limit]
    assert list(result.phases) == ["parse_store", "derive", "rollups"]
    statuses = {f.name: f.status for f in result.files if f.status != "skipped"}
    assert sorted(statuses) == sorted(
        [f"tendermint-v0.34-4node-wal/node{i}/data/cs.wal/wal" for i in range(4)]
        + [f"tendermint-v0.34-4node-wal/node{i}/tendermint.log" for i in range(4)]
    )
    assert set(statuses.values()) == {"ingested"}
    # the node homes' configuration is read for identity, and listed as not ingested
    skipped = {f.name: f.reason for f in result.files if f.status == "skipped"}
    assert skipped == {f"tendermint-v0.34-4node-wal/node{i}/config/{name}": "node configuration (read for the node's "
                       "identity)" for i in range(4) for name in ("config.toml", "genesis.json")}  # fmt: skip
    run = store.get_run("v034")
    nodes = store.nodes(run.id)
    assert len(nodes) == 4  # WAL and text log of one home are one node
    for n in nodes:
        assert n.validator in GENESIS_NAMES and n.label == GENESIS_NAMES[n.validator]
        assert n.p2p_id is not None and len(n.p2p_id) == 40
        # the node's p2p id is in every other node's persistent_peers, never in its own (a fact from config)
        for i in range(4):
            peers = (wal_testnet / f"node{i}" / "config" / "config.toml").read_text()
            assert n.p2p_id in peers
    # every WAL record of every node became an event, verified against a raw frame count, plus the events
    # derived from the records (tests/families/cometbft/parse/test_wal_derived.py): a block_complete per
    # height 1..77 and a timeout_scheduled per timeout (one per height) except the 2 overdue ones (first start, restart)
    for f in result.files:
        if f.name.endswith("/wal"):
            raw = (wal_testnet.parent / f.name).read_bytes()
            frames, pos = 0, 0
            while pos < len(raw):
                pos += 8 + int.from_bytes(raw[pos + 4 : pos + 8], "big")
                frames += 1
            assert f.report.lines == frames and f.report.events == frames + 77 + 75
    total = store.query("SELECT count(*) FROM events WHERE run_id = ? AND kind <> 'node_restart'", [run.id])[0][0]
    assert total == result.events  # node_restart events are derived after parsing (one per node here)
    assert result.derived["node_restarts"] == 4
    (min_h, max_h), = store.query(
        "SELECT min(height), max(height) FROM events WHERE run_id = ? AND kind = 'height_end'", [run.id]
    )
    assert (min_h, max_h) == (0, 77)
    store.close()


def test_reingesting_adds_nothing(wal_testnet: Path, settings: Settings) -> None:
    store = _store(settings)
    first = ingest(store, "r", [wal_testnet / "node1"], settings)
    count = "SELECT count(*) FROM events WHERE run_id = ?"
    before = store.query(count, [first.run_id])[0][0]
    assert before == first.events + first.derived["node_restarts"]  # the restart is derived, not parsed
    again = ingest(store, "r", [wal_testnet / "node1"], settings)
    assert first.events > 0 and again.events == 0
    assert {f.status for f in again.files if f.format} == {"duplicate"}
    run = store.get_run("r")
    assert store.query(count, [run.id])[0][0] == before  # nor is a restart found twice
    # a different run is a different question: the same file goes in again there
    other = ingest(store, "r2", [wal_testnet / "node1"], settings)
    assert other.events == first.events
    store.close()


def test_gzip_gives_the_same_events(json_debug_lines: Path, tmp_path: Path, settings: Settings) -> None:
    gz = tmp_path / "node0.log.gz"
    gz.write_bytes(gzip.compress(json_debug_lines.read_bytes()))
    store = _store(settings)
    a = ingest(store, "plain", [json_debug_lines], settings)
    b = ingest(store, "gz", [gz], settings)
    assert a.events == b.events == 28
    cols = "ts, kind, height, round, step, validator, peer, msg_key, seq, extra"
    rows = [store.query(f"SELECT {cols} FROM events WHERE run_id = ? ORDER BY seq", [store.get_run(r).id])
            for r in ("plain", "gz")]  # fmt: skip
    assert rows[0] == rows[1]
    node = store.nodes(store.get_run("gz").id)[0]
    assert node.p2p_id == "c9124bcc8a68b332bb01164bda1cee1b2e2892fc"
    store.close()


def test_bad_files_are_reported_and_the_rest_kept(json_debug_lines: Path, tmp_path: Path, settings: Settings) -> None:
    folder = tmp_path / "mixed"
    folder.mkdir()
    shutil.copy(json_debug_lines, folder / "good.log")
    (folder / "empty.log").write_bytes(b"")
    (folder / "binary.log").write_bytes(bytes(range(256)) * 50)
    (folder / "broken.log.gz").write_bytes(b"\x1f\x8b\x08\x00garbage")
    store = _store(settings)
    result = ingest(store, "mixed", [folder], settings)
    by_name = {Path(f.name).name: f for f in result.files}
    assert by_name["good.log"].status == "ingested" and by_name["good.log"].report.events == 28
    assert by_name["empty.log"].status == "unrecognized" and by_name["empty.log"].reason == "empty file"
    assert by_name["binary.log"].status == "unrecognized"
    assert by_name["broken.log.gz"].status == "unrecognized"
    assert by_name["broken.log.gz"].reason.startswith("unreadable")  # type: ignore[union-attr]
    store.close()


def test_nothing_ingestable_fails_with_the_reasons(tmp_path: Path, settings: Settings) -> None:
    (tmp_path / "a.log").write_bytes(b"hello\nworld\n")
    store = _store(settings)
    with pytest.raises(NothingIngestedError, match=r"a\.log: unrecognized format"):
        ingest(store, "x", [tmp_path / "a.log"], settings)
    store.close()


def test_file_without_identity_is_ingested_with_a_warning(tmp_path: Path, settings: Settings) -> None:
    line = {"_msg": "Entering prevote step", "current": "4/0/RoundStepPropose", "height": 4, "level": "debug",
            "module": "consensus", "round": 0, "ts": "2025-06-08T01:24:25.115023Z"}  # fmt: skip
    f = tmp_path / "rotated.log"
    f.write_text(json.dumps(line) + "\n")
    store = _store(settings)
    result = ingest(store, "anon", [f], settings)
    assert result.events == 1
    assert any("no node identity" in w for w in result.files[0].report.warnings)
    assert store.nodes(store.get_run("anon").id)[0].label == "rotated"
    store.close()


def test_parallel_ranges_equal_inline(json_debug_lines: Path, tmp_path: Path) -> None:
    big = tmp_path / "big.log"
    big.write_bytes(json_debug_lines.read_bytes() * 40_000)  # ~33 MB: above the inline threshold
    settings = Settings(data_dir=tmp_path / "d", split_bytes=4 * 1024 * 1024)
    store = _store(settings)
    par = ingest(store, "par", [big], settings, workers=2)
    seq = ingest(store, "seq", [big], settings, workers=1)
    assert par.events == seq.events == 28 * 40_000
    q = "SELECT kind, count(*), sum(seq), sum(ts) FROM events WHERE run_id = ? GROUP BY kind ORDER BY kind"
    assert store.query(q, [store.get_run("par").id]) == store.query(q, [store.get_run("seq").id])
    store.close()
