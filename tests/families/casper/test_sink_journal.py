"""A journaled Casper sink (a store on disk): each write is durable in the journal and published before the store
inserts it; inserts that fail are retried and lose nothing; a process killed at any moment loses nothing it
published, and stores nothing twice, once the network is opened again (docs/casper.md "Journal")."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bftscope.config import Settings
from bftscope.families.casper import journal as journal_mod
from bftscope.families.casper.sink import CasperSink
from bftscope.families.casper.store import Stored
from bftscope.store.duckdb import DuckDBStore
from tests.families.casper.gen import chain


@pytest.fixture
def store(settings: Settings) -> Iterator[DuckDBStore]:
    s = DuckDBStore.open(settings.store_path, settings)
    yield s
    s.close()


def _count(store: DuckDBStore, table: str) -> int:
    return int(store.query(f"SELECT count(*) FROM {table}")[0][0])


class _HeldInserts:
    """A store double whose inserts wait until ``release`` is set (or fail while ``fail`` is above 0)."""

    def __init__(self, inner: DuckDBStore, fail: int = 0) -> None:
        self.inner, self.fail = inner, fail
        self.release = threading.Event()
        self.release.set()

    def execute_with(self, sql: str, *args: Any, **kw: Any) -> Any:
        if sql.startswith("INSERT"):
            self.release.wait(30)
            if self.fail > 0:
                self.fail -= 1
                raise RuntimeError("disk full")
        return self.inner.execute_with(sql, *args, **kw)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def _published(sink: CasperSink, events: list[Any], expect: int) -> list[Stored]:
    """Write ``events`` and return what the sink published once ``expect`` entities were (10 s at most)."""
    published: list[Stored] = []
    sink.listen(published.extend)
    sink.write("n1:9999", events)
    deadline = time.monotonic() + 10
    while len(published) < expect and time.monotonic() < deadline:
        time.sleep(0.01)
    return published


def test_a_write_is_published_before_the_store_inserts_it(store: DuckDBStore) -> None:
    held = _HeldInserts(store)
    held.release.clear()
    sink = CasperSink(held, "net:c", flush_s=0.002, apply_s=0.01)  # type: ignore[arg-type]
    assert sink.journaled
    published = _published(sink, chain(1, 5, deploys=2), 15)
    assert [s.out_id for s in published] == list(range(1, 16))  # subscribers have them ...
    assert _count(store, "casper_payloads") == 0  # ... the store does not yet
    held.release.set()
    sink.flush()  # flush waits for the store too
    assert _count(store, "casper_payloads") == 15 and _count(store, "casper_blocks") == 5
    assert sink.stats.applied == 15 and sink.stats.apply_errors == 0
    assert not list((store.files_dir / "casper-journal").rglob("*.journal"))  # type: ignore[operator]
    sink.close()


def test_failing_inserts_are_retried_and_nothing_is_lost(store: DuckDBStore) -> None:
    flaky = _HeldInserts(store, fail=2)  # one fewer than the retries flush() waits for
    sink = CasperSink(flaky, "net:c", flush_s=0.002, apply_s=0.01)  # type: ignore[arg-type]
    sink.write("n1:9999", chain(1, 4))
    sink.flush()
    assert sink.stats.apply_errors == 2 and sink.stats.lost_events == 0 and sink.stats.write_errors == 0
    assert _count(store, "casper_payloads") == 8  # once each: a failed insert left nothing behind
    ids = [r[0] for r in store.query("SELECT out_id FROM casper_payloads ORDER BY out_id")]
    assert ids == list(range(1, 9))
    sink.close()


def test_a_failed_journal_append_is_retried_without_a_duplicate(store: DuckDBStore,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    real = journal_mod.Journal.append
    calls = {"n": 0}

    def once_full(self: journal_mod.Journal, payload: bytes) -> int:
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(28, "No space left on device")
        return real(self, payload)

    monkeypatch.setattr(journal_mod.Journal, "append", once_full)
    sink = CasperSink(store, "net:c", flush_s=0.002, apply_s=0.01)
    published: list[Stored] = []
    sink.listen(published.extend)
    sink.write("n1:9999", chain(1, 3))
    sink.flush()
    sink.write("n1:9999", chain(4, 3))  # this write's first append fails: decided again, once
    sink.flush()
    assert sink.stats.write_errors == 1 and sink.stats.lost_events == 0
    assert [s.out_id for s in published] == list(range(1, 13))
    assert _count(store, "casper_payloads") == 12 and _count(store, "casper_blocks") == 6
    sink.close()


def test_an_open_sink_leaves_its_threads_a_core(store: DuckDBStore) -> None:
    """DuckDB works on one thread fewer while a sink writes (its checkpoints took both cores from the sink's
    threads: docs/casper.md "Speed"), and gets them back when the last sink of the store closes; a sink that
    could not open its journal takes none."""
    threads = lambda: int(store.query("SELECT current_setting('threads')")[0][0])  # noqa: E731
    default, reserved = threads(), max(1, (os.cpu_count() or 1) - 1)
    sink = CasperSink(store, "net:a")
    other = CasperSink(store, "net:b")
    assert threads() == reserved
    with pytest.raises(Exception, match=r"(?i)journal|lock"):
        CasperSink(store, "net:a")  # the network's journal has its writer
    sink.close()
    assert threads() == reserved
    other.close()
    assert threads() == default


def test_reopening_applies_what_the_journal_holds_once(store: DuckDBStore) -> None:
    held = _HeldInserts(store, fail=10**6)  # the store refuses every insert: all stays in the journal
    sink = CasperSink(held, "net:c", flush_s=0.002, apply_s=0.01, retries=1)  # type: ignore[arg-type]
    published = _published(sink, chain(1, 6, sigs=2), 24)
    sink.close()  # gives up inserting: the rows are applied when the network is opened again
    assert len(published) == 24 and _count(store, "casper_payloads") == 0
    again = CasperSink(store, "net:c", flush_s=0.002)
    assert again.stats.recovered_records >= 1
    assert _count(store, "casper_payloads") == 24 and _count(store, "casper_signatures") == 12
    again.write("n1:9999", chain(1, 6, sigs=2))  # the node re-sends everything (a resume): nothing new
    again.write("n1:9999", chain(7, 1))
    again.flush()
    ids = [r[0] for r in store.query("SELECT out_id FROM casper_payloads ORDER BY out_id")]
    assert ids == list(range(1, 27))
    again.close()
    third = CasperSink(store, "net:c")
    assert third.stats.recovered_records == 0 and _count(store, "casper_payloads") == 26
    third.close()


_CHILD = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from bftscope.config import Settings
    from bftscope.families.casper.sink import CasperSink
    from bftscope.store.duckdb import DuckDBStore
    from tests.families.casper.gen import chain

    settings = Settings(data_dir=Path(sys.argv[1]))
    store = DuckDBStore.open(settings.store_path, settings)
    sink = CasperSink(store, "net:c", flush_s=0.002, apply_s=float(sys.argv[2]))
    sink.listen(lambda stored: print(" ".join(str(s.out_id) for s in stored), flush=True))
    print("ready", flush=True)
    h = 1
    while True:
        sink.write("n1:9999", chain(h, 3, sigs=2))
        h += 3
        time.sleep(0.003)
""")


@pytest.mark.parametrize("apply_s", [0.0, 0.05, 60.0], ids=["eager", "batched", "never"])
def test_a_process_killed_at_any_moment_loses_nothing_it_published(tmp_path: Path, apply_s: float) -> None:
    """kill -9 while writing: before, during or after a journal append or an insert (random moments); every
    entity a subscriber was given is stored once, the ids have no gap, a second opening changes nothing."""
    rng = random.Random(apply_s)
    data = tmp_path / "data"
    root = Path(__file__).resolve().parents[3]
    env = {**os.environ, "PYTHONPATH": str(root) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    published: set[int] = set()
    for _ in range(3):  # killed three times, each reopening what the last one left
        child = subprocess.Popen([sys.executable, "-c", _CHILD, str(data), str(apply_s)], stdout=subprocess.PIPE,
                                 text=True, env=env, cwd=root)  # fmt: skip
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + rng.uniform(0.3, 1.2)
        lines: list[str] = []
        reader = threading.Thread(target=lines.extend, args=(child.stdout,))
        reader.start()
        while time.monotonic() < deadline:
            time.sleep(0.01)
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        reader.join(10)
        child.stdout.close()
        published |= {int(i) for line in lines for i in line.split()}
    assert published
    settings = Settings(data_dir=data)
    store = DuckDBStore.open(settings.store_path, settings)
    try:
        sink = CasperSink(store, "net:c")
        sink.close()
        ids = [int(r[0]) for r in store.query("SELECT out_id FROM casper_payloads ORDER BY out_id")]
        assert ids == list(range(1, len(ids) + 1))  # each once, no gap
        assert published <= set(ids)  # nothing a subscriber was given is missing
        keys = store.query("SELECT count(*), count(DISTINCT type || key) FROM casper_payloads")[0]
        assert keys[0] == keys[1]  # no entity twice
        blocks = store.query("SELECT count(*), count(DISTINCT block_hash) FROM casper_blocks")[0]
        assert blocks[0] == blocks[1]
        again = CasperSink(store, "net:c")
        assert again.stats.recovered_records == 0
        again.close()
        assert int(store.query("SELECT count(*) FROM casper_payloads")[0][0]) == len(ids)
    finally:
        store.close()
