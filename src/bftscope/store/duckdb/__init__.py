"""The embedded engine: a DuckDB file (:class:`DuckDBStore`), its SQL dialect and how it binds statements.

Everything DuckDB-specific lives in this package; the rest of bftscope reaches it through the
:class:`bftscope.store.Store` protocol and ``store.dialect``.
"""

from bftscope.store.duckdb.dialect import DUCKDB, DuckDBDialect
from bftscope.store.duckdb.engine import ROW_GROUP_ROWS, DuckDBStore

__all__ = ["DUCKDB", "ROW_GROUP_ROWS", "DuckDBDialect", "DuckDBStore"]
