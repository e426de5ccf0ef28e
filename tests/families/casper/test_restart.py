"""A Casper network whose follower fails is restarted by the server's supervisor with a new follower and a new
sink: the failed follower's sink is closed (its ``casper-sink:*`` writer thread ends) rather than left behind
once per restart, and deleting the network closes the last one."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from bftscope.config import Settings
from bftscope.families import registry
from bftscope.ingest.live import Backoff
from bftscope.live.alerts import defaults
from bftscope.live.following import build_supervisor
from bftscope.live.supervisor import NetworkSpec
from bftscope.store import open_store
from tests.families.casper.servers import wait_for


def sink_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("casper-sink:")]


class Failing:
    """A follower whose ``run`` fails at once (a store error, a bug): the supervisor restarts the network."""

    def __init__(self, sink: Any) -> None:
        self.sink = sink

    async def run(self) -> None:
        raise RuntimeError("follower failed")

    async def stop(self) -> None:
        return None

    def status(self) -> Any:
        return None

    def listen(self, callback: Callable[[Any], None]) -> Callable[[], None]:
        return lambda: None


def failing_in_run(name: str, endpoints: Sequence[str], sink: Any, **kw: Any) -> Any:
    return Failing(sink)


def failing_when_made(name: str, endpoints: Sequence[str], sink: Any, **kw: Any) -> Any:
    raise RuntimeError("follower could not be made")


@pytest.mark.parametrize("make", [failing_in_run, failing_when_made])
def test_a_restarted_casper_follower_leaves_no_sink_thread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           make: Any) -> None:  # fmt: skip
    settings = Settings(data_dir=tmp_path / "data")
    family = registry.family("casper")
    monkeypatch.setattr(family, "follower", make)
    before = len(sink_threads())
    store = open_store(settings)
    try:

        async def run() -> None:
            sup = build_supervisor(store, settings, [])
            sup.backoff = Backoff(base=0.001, cap=0.001)
            spec = NetworkSpec("n1", "cs", "casper", ("http://127.0.0.1:9",), defaults(settings), "net:cs")
            entry = await sup.follow(spec)
            while entry.restarts < 6:
                await asyncio.sleep(0.01)
            assert len(sink_threads()) - before <= 1, sink_threads()  # at most the sink of the follower now made
            await sup.unfollow("n1")
            await sup.shutdown()

        asyncio.run(run())
        # each closing sink joins its writer and applier threads: on a loaded machine that takes a while
        wait_for(lambda: len(sink_threads()) == before, "every casper-sink thread closed", 30)
    finally:
        store.close()
