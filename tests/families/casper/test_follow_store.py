"""The issue's test: a generated network of ≥ 10,000 events from three nodes, each node's server dropping the
connection at random 50 times (mid-event too) and honouring ``start_from``, followed into a real store —
every entity stored exactly once, nothing missing, no duplicate event-log rows, each node's Shutdown; with
the follower in this process and in a child process (follow/process.py)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest

from bftscope.config import Settings
from bftscope.families.casper.follow.follower import CasperFollower
from bftscope.families.casper.follow.process import ProcessFollower
from bftscope.families.casper.replay.server import ReplayNode
from bftscope.families.casper.replay.wire import Wire
from bftscope.families.casper.rows import ENTITY_TABLES
from bftscope.families.casper.sink import CasperSink
from bftscope.families.casper.synthetic import Synthetic, generate
from bftscope.ingest.live import Backoff
from bftscope.store.duckdb import DuckDBStore

DROPS = 50


@pytest.fixture
def store(settings: Settings) -> Iterator[DuckDBStore]:
    s = DuckDBStore.open(settings.store_path, settings)
    yield s
    s.close()


def _stored_keys(store: DuckDBStore, run_id: int, kind: str) -> list[str]:
    table = ENTITY_TABLES[kind]
    cols = ", ".join(table.key_cols)
    rows = store.query(f"SELECT {cols} FROM {table.table} WHERE run_id = ?", [run_id])
    return [" ".join(str(v) for v in row) for row in rows]


async def _follow(synth: Synthetic, sink: CasperSink, kind: type[Any]) -> tuple[list[ReplayNode], Any]:
    nodes = [ReplayNode(stream, first_id=first, wire=Wire(split=k == 0, batch=1 + 2 * k, crlf=k == 1,
                                                          drop_every=12, max_drops=DROPS, seed=k))
             for k, (stream, first) in enumerate(zip(synth.streams, synth.first_ids, strict=True))]  # fmt: skip
    for n in nodes:
        await n.start()
    follower = kind("gen", [n.url for n in nodes], sink, backoff=Backoff(base=0.002, cap=0.02), keepalive_timeout=10)
    task = asyncio.create_task(follower.run())
    ends = {n.port: synth.shutdown_ids[k] for k, n in enumerate(nodes)}  # every channel's last event: Shutdown
    deadline = time.monotonic() + 90
    try:
        while time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            st = follower.status()
            done = all(n.last_ids == dict.fromkeys(("main", "deploys", "sigs"), ends[int(n.label.rsplit(":")[1])])
                       for n in st.nodes)  # fmt: skip
            if done and all(n.drops == DROPS for n in nodes):
                break
        else:
            raise AssertionError(f"not followed to the end: {follower.status()}, drops {[n.drops for n in nodes]}")
    finally:
        await follower.stop()
        await task
        for n in nodes:
            await n.close()
    return nodes, follower


@pytest.mark.parametrize("kind", [CasperFollower, ProcessFollower], ids=["here", "in a child process"])
def test_three_dropping_nodes_store_every_entity_once(store: DuckDBStore, kind: type[Any]) -> None:
    synth = generate(10_000, nodes=3, seed=11)
    assert synth.total >= 10_000 and len(synth.streams) == 3
    sink = CasperSink(store, "net:gen")
    nodes, follower = asyncio.run(_follow(synth, sink, kind))
    sink.close()
    assert [n.drops for n in nodes] == [DROPS] * 3
    st = follower.status()
    assert all(n.reconnects >= DROPS // 3 for n in st.nodes)  # each drop was a reconnect of some channel
    assert sink.stats.lost_events == 0 and sink.stats.write_errors == 0 and sink.stats.conflicts == 0
    run_id = sink.run_id
    for kind, keys in synth.truth.items():
        if kind == "Shutdown":
            continue
        stored = _stored_keys(store, run_id, kind)
        assert len(stored) == len(keys), kind  # each once
        assert set(stored) == keys, kind  # nothing missing, nothing else
    labels = sorted(n.label for n in st.nodes)
    shutdowns = store.query("SELECT source, event_id FROM casper_shutdowns WHERE run_id = ?", [run_id])
    by_port = {f"127.0.0.1:{n.port}": synth.shutdown_ids[k] for k, n in enumerate(nodes)}
    assert sorted(shutdowns) == sorted(by_port.items()) and sorted(by_port) == labels
    (rows, distinct), = store.query(
        "SELECT count(*), count(DISTINCT (source, channel, event_id, type, key)) FROM casper_event_log "
        "WHERE run_id = ?", [run_id])  # fmt: skip
    # every event each node sent, once per channel it came on (a Shutdown comes on all three)
    assert rows == distinct == synth.total - 3 + 3 * 3
    (payloads,), = store.query("SELECT count(*) FROM casper_payloads WHERE run_id = ?", [run_id])
    entities = sum(len(k) for k in synth.truth.values())
    assert payloads == entities
