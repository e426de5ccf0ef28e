"""The ``engine`` fixture: every conformance test runs once per storage engine.

An engine is opened only through :func:`bftscope.store.open_store` with its name in the settings, so a
test here sees exactly what the ingest, analytics and API see: the :class:`bftscope.store.Store`
protocol. A new engine adds one :class:`Engine` to ``ENGINES`` (and a server fixture if it needs one).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bftscope.config import Settings
from bftscope.store import Store, open_store

__all__ = ["Engine", "Opener"]


@dataclass(frozen=True)
class Engine:
    name: str
    slow_query: str  # a read that runs far longer than a fraction of a second, in the engine's SQL


ENGINES = [Engine("duckdb", slow_query="SELECT count(*) FROM range(100000000000) a")]


@pytest.fixture(params=ENGINES, ids=lambda e: e.name)
def engine(request: pytest.FixtureRequest) -> Engine:
    engine: Engine = request.param
    return engine


Opener = Callable[..., Store]


@pytest.fixture
def open_engine(engine: Engine, tmp_path: Path) -> Iterator[Opener]:
    """Open (or reopen) the engine's store under one data folder; every store opened is closed at the end."""
    opened: list[Store] = []

    def opener(**overrides: object) -> Store:
        options: dict[str, object] = {"data_dir": tmp_path / "data", "query_timeout_s": 30, **overrides}
        store = open_store(Settings(store_engine=engine.name, **options))  # type: ignore[arg-type]
        opened.append(store)
        return store

    yield opener
    for store in opened:
        with contextlib.suppress(Exception):  # a test may have closed it already (to reopen)
            store.close()


@pytest.fixture
def store(open_engine: Opener) -> Store:
    return open_engine()
