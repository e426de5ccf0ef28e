"""Storage of runs, nodes, sources and events.

:class:`Store` is the interface every engine implements (with its SQL :class:`Dialect`); each engine is a
package of its own (``store/duckdb/``: the embedded default). :func:`open_store` picks the engine the
settings name (``BFTSCOPE_STORE``), so nothing above the store names an engine.
"""

from collections.abc import Callable

from bftscope.config import Settings
from bftscope.errors import InputError
from bftscope.store.base import NodeRecord, RunRecord, SourceRecord, Store
from bftscope.store.dialect import Dialect
from bftscope.store.duckdb import DuckDBStore

__all__ = ["ENGINES", "Dialect", "DuckDBStore", "NodeRecord", "RunRecord", "SourceRecord", "Store", "open_store"]


def _open_duckdb(settings: Settings, read_only: bool) -> Store:
    return DuckDBStore.open(settings.store_path, settings, read_only=read_only)


# Engine name (the ``store_engine`` setting) → how to open it. A new engine adds its package and a line here.
ENGINES: dict[str, Callable[[Settings, bool], Store]] = {"duckdb": _open_duckdb}


def open_store(settings: Settings, *, read_only: bool = False) -> Store:
    """Open (creating and migrating if needed) the store the settings point at, on the engine they name."""
    opener = ENGINES.get(settings.store_engine)
    if opener is None:
        raise InputError(f"unknown store engine {settings.store_engine!r} (BFTSCOPE_STORE); "
                         f"known: {', '.join(sorted(ENGINES))}")  # fmt: skip
    return opener(settings, read_only)
