"""Storage of runs, nodes, sources and events.

:class:`Store` is the interface every backend implements; :class:`DuckDBStore` is the embedded
default. Engine-specific SQL lives in :mod:`bftscope.store.dialect`.
"""

from bftscope.config import Settings
from bftscope.store.base import NodeRecord, RunRecord, SourceRecord, Store
from bftscope.store.duckdb import DuckDBStore

__all__ = ["DuckDBStore", "NodeRecord", "RunRecord", "SourceRecord", "Store", "open_store"]


def open_store(settings: Settings, *, read_only: bool = False) -> DuckDBStore:
    """Open (creating and migrating if needed) the store the settings point at."""
    return DuckDBStore.open(settings.store_path, settings, read_only=read_only)
