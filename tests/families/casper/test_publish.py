"""Publishing: the family's ``publish_live`` hook wires a CasperSink to a broadcaster; each write is one batch of
its new entities in ``out_id`` order, carrying the seed's JSON (as REST builds it), the node's JSON and the
channels; the publisher's thread ends when idle and comes back with the next write."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from bftscope.config import Settings
from bftscope.families.casper.api.shapes import block_of, processed_deploy_of
from bftscope.families.casper.family import FAMILY
from bftscope.families.casper.publish import Batch, Publisher, decode_batch, topic_of
from bftscope.families.casper.sink import CasperSink
from bftscope.live.broadcast import MemoryBroadcaster
from bftscope.store.duckdb import DuckDBStore
from tests.families.casper.gen import account, chain


@pytest.fixture
def store(tmp_path: Path) -> Iterator[DuckDBStore]:
    cfg = Settings(data_dir=tmp_path / "d")
    s = DuckDBStore.open(cfg.store_path, cfg)
    yield s
    s.close()


def _publishers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("casper-publish:")]


def test_each_write_is_one_batch_of_its_entities(store: DuckDBStore) -> None:
    async def run() -> None:
        b = MemoryBroadcaster()
        await b.start()
        sub = b.subscribe(topic_of("n1"))
        sink = CasperSink(store, "net:n1", flush_s=0.002)
        assert FAMILY.publish_live(sink, None, "n1") is None  # no broadcaster: nothing
        detach = FAMILY.publish_live(sink, b, "n1")
        events = chain(1, 2, deploys=1, sigs=1)
        await asyncio.to_thread(lambda: (sink.write("n1:9999", events), sink.flush()))
        msg = await asyncio.wait_for(anext(sub), 20)
        assert isinstance(msg.value, Batch) and decode_batch(msg.data) == msg.value  # the same, as bytes
        got = msg.value.entities
        assert [e.out_id for e in got] == [1, 2, 3, 4, 5, 6]
        assert [(e.type, e.ws) for e in got[:2]] == [("BlockAdded", ["blocks", f"block:{events[0].key}"]),
                                                     ("DeployProcessed", [f"deploy:{events[1].key}",
                                                                          f"accountDeploys:{account(1)}"])]  # fmt: skip
        assert orjson.loads(bytes(got[0].seed)) == block_of(events[0].fields)
        assert orjson.loads(bytes(got[1].seed)) == processed_deploy_of(events[1].fields)
        sigs = [e for e in got if e.type == "FinalitySignature"]
        assert [e.channel for e in sigs] == ["sigs", "sigs"] and all(bytes(e.seed) == b"null" for e in sigs)
        assert [bytes(e.raw) for e in got] == [e.raw for e in events]  # the node's JSON, byte for byte
        assert [e.era for e in got[:1]] == [0] and got[0].proposer == events[0].fields["proposer"]
        detach()
        sink.close()
        await b.close()

    asyncio.run(run())


def test_the_publishers_thread_ends_when_idle_and_returns(store: DuckDBStore) -> None:
    b = MemoryBroadcaster()
    sink = CasperSink(store, "net:n2", flush_s=0.002)
    publisher = Publisher(b, "n2", idle_s=0.05)
    sink.listen(publisher)
    sink.write("n1:9999", chain(1, 1))
    sink.flush()
    deadline = threading.Event()
    for _ in range(500):  # until the write is published and the idle thread has ended
        if publisher.published == 2 and not any(t.name == "casper-publish:n2" for t in _publishers()):
            break
        deadline.wait(0.01)
    assert publisher.published == 2 and not [t for t in _publishers() if t.name == "casper-publish:n2"]
    sink.write("n1:9999", chain(2, 1))
    sink.flush()
    for _ in range(500):
        if publisher.published == 4:
            break
        deadline.wait(0.01)
    assert publisher.published == 4 and publisher.dropped == 0
    sink.close()
