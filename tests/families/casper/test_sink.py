"""The Casper sink batches followers' events into the store and publishes each new entity once."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from bftscope.config import Settings
from bftscope.families.casper.decoder import CasperDecoder
from bftscope.families.casper.model import CasperEvent
from bftscope.families.casper.sink import CasperSink
from bftscope.families.casper.store import Stored
from bftscope.sources.base import Frame
from bftscope.store.duckdb import DuckDBStore


@pytest.fixture
def store(settings: Settings) -> Iterator[DuckDBStore]:
    s = DuckDBStore.open(settings.store_path, settings)
    yield s
    s.close()


def _sigs(source: str, n: int, first_id: int = 0) -> list[CasperEvent]:
    dec = CasperDecoder(source, "sigs")
    out: list[CasperEvent] = []
    for i in range(n):
        body = {"FinalitySignature": {"block_hash": f"{i // 10:064x}", "era_id": 3, "signature": "01" + "cd" * 64,
                                      "public_key": "01" + f"{i % 10:064x}"}}  # fmt: skip
        out.extend(dec.feed(Frame(json.dumps(body).encode(), id=str(first_id + i))))
    return out


def test_nodes_writing_at_once_are_stored_and_published_once(store: DuckDBStore) -> None:
    sink = CasperSink(store, "net:c", flush_s=0.005, max_batch=50)
    published: list[Stored] = []
    sink.listen(published.extend)
    threads = [threading.Thread(target=lambda s=s: [sink.write(s, [e]) for e in _sigs(s, 400)])
               for s in ("n1:1", "n2:1", "n3:1")]  # fmt: skip
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    sink.flush()
    assert sorted(p.key for p in published) == sorted({e.key for e in _sigs("x", 400)})
    assert [p.out_id for p in sorted(published, key=lambda p: p.out_id)] == list(range(1, 401))
    assert sink.stats.received == 1200 and sink.stats.stored == 400 and sink.stats.duplicate_entities == 800
    assert store.query("SELECT count(*) FROM casper_event_log")[0][0] == 1200
    sink.close()


class _FailingStore:
    """A store double whose Casper writes fail the first ``fails`` times."""

    def __init__(self, inner: DuckDBStore, fails: int) -> None:
        self.inner, self.fails = inner, fails

    def execute_with(self, *args: Any, **kw: Any) -> Any:
        if self.fails > 0:
            self.fails -= 1
            raise RuntimeError("disk full")
        return self.inner.execute_with(*args, **kw)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_a_failing_write_is_retried_and_a_lost_batch_is_counted(store: DuckDBStore) -> None:
    flaky = CasperSink(_FailingStore(store, 2), "net:c", flush_s=0.001, journal=False)  # type: ignore[arg-type]
    flaky.write("n1:1", _sigs("n1:1", 5))
    flaky.flush()
    assert flaky.stats.write_errors == 2 and flaky.stats.stored == 5 and flaky.stats.lost_events == 0
    flaky.close()
    broken = CasperSink(_FailingStore(store, 99), "net:c", flush_s=0.001, retries=2,
                        journal=False)  # type: ignore[arg-type]
    broken.write("n1:1", _sigs("n1:1", 5, first_id=100))
    broken.flush()
    assert broken.stats.lost_events == 5 and broken.stats.stored == 0
    broken.close()


class _GatedStore:
    """A store double whose first Casper insert waits until ``gate`` is set."""

    def __init__(self, inner: DuckDBStore) -> None:
        self.inner, self.gate, self.entered = inner, threading.Event(), threading.Event()

    def execute_with(self, *args: Any, **kw: Any) -> Any:
        self.entered.set()
        assert self.gate.wait(10)
        return self.inner.execute_with(*args, **kw)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_what_arrives_during_a_write_is_the_next_batch(store: DuckDBStore) -> None:
    """Group commit (the default): an idle writer writes the first arrival at once; the 100 arrivals made while
    it writes go as one next batch."""
    gated = _GatedStore(store)
    sink = CasperSink(gated, "net:c", journal=False)  # type: ignore[arg-type]
    events = _sigs("n1:1", 101)
    started = time.monotonic()
    sink.write("n1:1", events[:1])
    assert gated.entered.wait(5)
    assert time.monotonic() - started < 1.0  # no gathering (a gather of flush_s >= 1 s fails this)
    for e in events[1:]:
        sink.write("n1:1", [e])
    gated.gate.set()
    sink.flush()
    assert sink.stats.writes == 2 and sink.stats.stored == 101
    sink.close()
