"""``bftscope watch NAME --casper URL …`` against replayed nodes: it stores into run ``net:NAME``, a second watch
resumes each node channel from the last id the run holds (nothing stored twice), Ctrl-C ends with the one-line
summary, a bad URL or a run of another chain is a one-line error, and ``--rpc`` with ``--casper`` is refused."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from typer.testing import CliRunner

from bftscope.cli import app
from bftscope.config import Settings
from bftscope.families.casper.replay.server import ReplayNode
from bftscope.families.casper.synthetic import generate
from bftscope.store import open_store
from tests.conftest import REPO


@contextmanager
def serving(nodes: Sequence[ReplayNode]) -> Iterator[tuple[list[str], asyncio.AbstractEventLoop]]:
    """The nodes served from a thread of their own (the command runs its own event loop), and that loop."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    for n in nodes:
        asyncio.run_coroutine_threadsafe(n.start(), loop).result(10)
    try:
        yield [n.url for n in nodes], loop
    finally:
        for n in nodes:
            asyncio.run_coroutine_threadsafe(n.close(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def _rows(data: Path, sql: str) -> list[tuple[object, ...]]:
    store = open_store(Settings(data_dir=data))
    try:
        return [tuple(r) for r in store.query(sql)]
    finally:
        store.close()


def test_watch_then_resume_stores_each_event_once(tmp_path: Path) -> None:
    data = tmp_path / "data"
    synth = generate(1_500, nodes=2, seed=5)
    top = max(synth.heights.values())
    # each node has buffered the first half of its events; the rest comes once the first watch has stopped
    nodes = [ReplayNode(s, first_id=f, preload=len(s) // 2) for s, f in zip(synth.streams, synth.first_ids,
                                                                             strict=True)]  # fmt: skip
    with serving(nodes) as (urls, loop):
        args = ["watch", "gen", *[a for u in urls for a in ("--casper", u)], "--data-dir", str(data), "--progress", "0"]
        first = CliRunner().invoke(app, [*args, "--until-height", str(top // 4)])
        assert first.exit_code == 0, first.output
        assert first.output.startswith("gen: ") and "highest block" in first.output
        (blocks_before,), = _rows(data, "SELECT count(*) FROM casper_blocks")
        last = {(str(src), str(ch)): int(i) for src, ch, i in _rows(
            data, "SELECT source, channel, arg_max(event_id, received_ns) FROM casper_event_log GROUP BY ALL")}
        for n in nodes:
            asyncio.run_coroutine_threadsafe(n.release(), loop).result(10)
        opened = [len(n.start_froms) for n in nodes]  # connections of the first watch
        again = CliRunner().invoke(app, [*args, "--until-height", str(top)])
        assert again.exit_code == 0, again.output
        assert f"resuming gen: {len(last)} node channels" in again.output and last
    for n, before in zip(nodes, opened, strict=True):  # the second watch's: from the last id stored, else 0
        for channel, start in n.start_froms[before:]:
            assert start == last.get((f"127.0.0.1:{n.port}", channel), 0), (channel, start)
    (chain,), = _rows(data, "SELECT chain FROM runs WHERE name = 'net:gen'")
    (rows, distinct), = _rows(data, "SELECT count(*), count(DISTINCT (source, channel, event_id, type, key)) "
                                    "FROM casper_event_log")  # fmt: skip
    (blocks, distinct_blocks, highest), = _rows(data, "SELECT count(*), count(DISTINCT block_hash), max(height) "
                                                      "FROM casper_blocks")  # fmt: skip
    assert chain == "casper" and rows == distinct > 0
    assert blocks == distinct_blocks and 0 < blocks_before < blocks and highest == top


def test_ctrl_c_stops_cleanly_with_a_summary(tmp_path: Path) -> None:
    synth = generate(300, nodes=1, seed=2)
    with serving([ReplayNode(synth.streams[0], first_id=synth.first_ids[0])]) as (urls, _):
        env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "COLUMNS": "200"}
        proc = subprocess.Popen(
            [sys.executable, "-c", "from bftscope.cli import main; main()", "watch", "cs", "--casper", urls[0],
             "--data-dir", str(tmp_path / "data"), "--progress", "0.05"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )  # fmt: skip
        assert proc.stderr is not None
        for line in proc.stderr:  # progress lines until every event is in (the node then only sends keep-alives)
            if " events · " in line and int(line.split(" events")[0].replace(",", "")) >= len(synth.streams[0]):
                break
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr
    (summary,) = stdout.strip().splitlines()
    # every event, a Shutdown once per channel (it comes on all three)
    assert summary.startswith(f"cs: {len(synth.streams[0]) + 2:,} events")
    assert f"{len(synth.streams[0]) + 2:,} events 0 reconnects" in summary and " stopped " in summary
    assert "Traceback" not in stderr
    (shutdowns,), = _rows(tmp_path / "data", "SELECT count(*) FROM casper_shutdowns")
    assert shutdowns == 1


def test_bad_urls_and_mixed_chains_are_one_line_errors(tmp_path: Path) -> None:
    data = ["--data-dir", str(tmp_path / "data")]
    bad = CliRunner().invoke(app, ["watch", "x", "--casper", "ws://node:9999", *data])
    both = CliRunner().invoke(app, ["watch", "x", "--casper", "http://n:1", "--rpc", "http://n:2", *data])
    neither = CliRunner().invoke(app, ["watch", "x", *data])
    assert bad.exit_code == 1 and "http:// or https://" in bad.output
    assert both.exit_code == 1 and "one chain per run" in both.output
    assert neither.exit_code == 1 and "--rpc URL" in neither.output and "--casper URL" in neither.output
    store = open_store(Settings(data_dir=tmp_path / "data"))
    try:
        store.get_or_create_run("net:tm", "cometbft")
    finally:
        store.close()
    other = CliRunner().invoke(app, ["watch", "tm", "--casper", "http://127.0.0.1:1", *data])
    assert other.exit_code == 1 and "not a Casper network" in other.output


def test_alerts_with_casper_are_refused_naming_the_casper_alerts(tmp_path: Path) -> None:
    data = ["--data-dir", str(tmp_path / "data")]
    got = CliRunner().invoke(app, ["watch", "x", "--casper", "http://127.0.0.1:1", "--alert", "missedVotes=1", *data])
    assert got.exit_code == 2, got.output
    lines = got.output.strip().splitlines()
    assert len(lines) == 1 and "--alert" in lines[0] and "Casper" in lines[0] and "none yet" in lines[0], lines
    assert not (tmp_path / "data").exists() or not list((tmp_path / "data").glob("*.duckdb*"))  # refused before
