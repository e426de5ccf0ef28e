"""Folder discovery: every file found is ingested or listed as skipped with its reason; formats come
from content, never from names; links are followed with loops and dangling ones reported; a truncated
``.gz`` keeps what decompressed."""

from __future__ import annotations

import gzip
import os
import shutil
from pathlib import Path

from bftscope.config import Settings
from bftscope.ingest.pipeline import ingest
from bftscope.store import DuckDBStore


def _store(settings: Settings) -> DuckDBStore:
    return DuckDBStore.open(settings.store_path, settings)


def test_files_are_found_by_content_whatever_their_names(
    wal_testnet: Path, json_debug_lines: Path, tmp_path: Path, settings: Settings
) -> None:
    folder = tmp_path / "odd"
    folder.mkdir()
    wal = wal_testnet / "node0" / "data" / "cs.wal" / "wal"
    shutil.copy(wal, folder / "wal")  # a WAL outside cs.wal/
    shutil.copy(wal_testnet / "node1" / "data" / "cs.wal" / "wal", folder / "wal.000")
    shutil.copy(wal_testnet / "node2" / "data" / "cs.wal" / "wal", folder / "node2.wal")
    shutil.copy(json_debug_lines, folder / "b")  # a log with a name that says nothing
    (folder / "notes").write_bytes(b"just some text\n")
    store = _store(settings)
    result = ingest(store, "odd", [folder], settings)
    by_name = {Path(f.name).name: f for f in result.files}
    assert set(by_name) == {"wal", "wal.000", "node2.wal", "b", "notes"}
    for name in ("wal", "wal.000", "node2.wal"):
        assert by_name[name].status == "ingested" and by_name[name].format == "cometbft-wal", name
    assert by_name["b"].status == "ingested" and by_name["b"].report.events == 28
    assert by_name["notes"].status == "unrecognized" and by_name["notes"].reason == "unrecognized format"
    store.close()


def test_links_fifos_and_missing_paths_are_reported_and_the_rest_kept(
    json_debug_lines: Path, tmp_path: Path, settings: Settings
) -> None:
    folder = tmp_path / "links"
    (folder / "sub").mkdir(parents=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.copy(json_debug_lines, elsewhere / "real.log")
    (folder / "linked.log").symlink_to(elsewhere / "real.log")  # followed, even out of the folder
    (folder / "dangling.log").symlink_to(tmp_path / "gone.log")
    (folder / "loop1").symlink_to(folder / "loop2")
    (folder / "loop2").symlink_to(folder / "loop1")
    (folder / "sub" / "up").symlink_to(folder)  # a directory loop
    os.mkfifo(folder / "pipe.log")
    lone_dangling = tmp_path / "lone.log"
    lone_dangling.symlink_to(tmp_path / "nowhere.log")
    store = _store(settings)
    result = ingest(store, "links", [folder, tmp_path / "missing.log", lone_dangling], settings)
    got = {f.name: (f.status, f.reason) for f in result.files}
    assert got["links/linked.log"][0] == "ingested"
    assert result.events == 28  # the linked file once, although the folder loop leads back to it
    assert got["links/dangling.log"] == ("skipped", "dangling symbolic link")
    assert got["links/loop1"] == ("skipped", "symbolic link loop")
    assert got["links/loop2"] == ("skipped", "symbolic link loop")
    assert got["links/pipe.log"] == ("skipped", "not a regular file (FIFO)")
    assert got["links/sub/up"] == ("skipped", "symbolic link loop (a folder already searched)")
    assert got[str(tmp_path / "missing.log")] == ("skipped", "no such file or directory")
    assert got[str(lone_dangling)] == ("skipped", "dangling symbolic link")
    store.close()


def test_a_truncated_gzip_keeps_what_decompressed(json_debug_lines: Path, tmp_path: Path, settings: Settings) -> None:
    data = json_debug_lines.read_bytes() * 40
    packed = gzip.compress(data)
    cut = tmp_path / "node0.log.gz"
    cut.write_bytes(packed[: len(packed) * 2 // 3])
    store = _store(settings)
    result = ingest(store, "cut", [cut], settings)
    (f,) = result.files
    assert f.status == "ingested"
    assert 0 < f.report.events < 28 * 40
    assert f.report.skipped["gzip stream truncated"] == 1
    assert any(w.startswith("gzip stream truncated after ") for w in f.report.warnings)
    # what was kept is exactly what the plain file gives for the same lines
    kept = store.query("SELECT count(*) FROM events WHERE run_id = ?", [store.get_run("cut").id])[0][0]
    assert kept == f.report.events
    store.close()
