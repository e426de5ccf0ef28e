"""What differs in SQL between engines, as one small protocol every engine's store provides.

Analytics and control write portable SQL — explicit ``GROUP BY`` lists, ``?`` or ``:name`` parameters
(each engine translates ``:name`` to its own spelling) — and ask ``store.dialect`` for the fragments that
no common spelling covers: exact percentiles, "value at the minimum", lists and structs, temporary
tables, sampling. Each engine keeps its implementation beside its store (``store/duckdb/dialect.py``),
as sqlglot keeps one module per dialect, so adding an engine adds a package and touches no caller.
Percentiles are exact with linear interpolation everywhere (NumPy's default).
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["Dialect", "check_quantile"]


def check_quantile(q: float) -> float:
    """``q`` if it is a valid quantile, else ValueError (a bad fraction is a caller's bug, not input)."""
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile out of range: {q}")
    return q


class Dialect(Protocol):
    """SQL fragments an engine spells its own way; every method returns SQL text."""

    @property
    def name(self) -> str:
        """The engine's name (``"duckdb"``), as migrations and settings spell it."""
        ...

    def quantile(self, expr: str, q: float) -> str:
        """Exact ``q``-quantile of ``expr`` over the group, interpolated linearly."""
        ...

    def ns_to_timestamp(self, expr: str) -> str:
        """A timestamp from integer nanoseconds since the epoch (microsecond precision)."""
        ...

    def bucket_ns(self, expr: str, width_ns: int) -> str:
        """``expr`` (nanoseconds) rounded down to a multiple of ``width_ns``."""
        ...

    def arg_min(self, value: str, key: str) -> str:
        """``value`` of the group's row with the smallest ``key``."""
        ...

    def arg_max(self, value: str, key: str) -> str:
        """``value`` of the group's row with the largest ``key``."""
        ...

    def any_value(self, expr: str) -> str:
        """Any one non-null ``expr`` of the group (callers use it where all are equal)."""
        ...

    def list_agg(self, expr: str, *, distinct: bool = False) -> str:
        """The group's values of ``expr`` as a list (array)."""
        ...

    def list_union(self, a: str, b: str) -> str:
        """The distinct elements of lists ``a`` and ``b`` (either may be NULL: no elements)."""
        ...

    def struct(self, fields: dict[str, str]) -> str:
        """A record with the named fields, in order."""
        ...

    def to_json(self, expr: str) -> str:
        """``expr`` (a record, list or value) as JSON text."""
        ...

    def temp_table(self, name: str, select: str) -> str:
        """A statement (re)creating the writer's temporary table ``name`` from ``select``."""
        ...

    def all_columns_except(self, *columns: str) -> str:
        """A select list of every column of the source but ``columns``."""
        ...

    def sample_rows(self, n: int) -> str:
        """A clause after ``FROM table`` keeping a random sample of at most ``n`` rows."""
        ...

    def asof_join(self, table: str, on: str) -> str:
        """A join clause pairing each left row with the last ``table`` row meeting ``on`` (whose last
        condition is an inequality ``left >= right``)."""
        ...
