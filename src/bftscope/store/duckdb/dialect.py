"""DuckDB's spelling of the fragments in :class:`bftscope.store.dialect.Dialect`.

Percentiles use ``quantile_cont`` (exact, linear interpolation — NumPy's default).
"""

from __future__ import annotations

from dataclasses import dataclass

from bftscope.store.dialect import check_quantile

__all__ = ["DUCKDB", "DuckDBDialect"]


@dataclass(frozen=True)
class DuckDBDialect:
    name: str = "duckdb"

    def quantile(self, expr: str, q: float) -> str:
        return f"quantile_cont({expr}, {check_quantile(q)!r})"

    def ns_to_timestamp(self, expr: str) -> str:
        return f"make_timestamp(({expr}) // 1000)"

    def bucket_ns(self, expr: str, width_ns: int) -> str:
        return f"(({expr}) // {int(width_ns)}) * {int(width_ns)}"

    def arg_min(self, value: str, key: str) -> str:
        return f"arg_min({value}, {key})"

    def arg_max(self, value: str, key: str) -> str:
        return f"arg_max({value}, {key})"

    def any_value(self, expr: str) -> str:
        return f"any_value({expr})"

    def list_agg(self, expr: str, *, distinct: bool = False) -> str:
        return f"list({'DISTINCT ' if distinct else ''}{expr})"

    def list_union(self, a: str, b: str) -> str:
        return f"list_distinct(list_concat(coalesce({a}, []), coalesce({b}, [])))"

    def struct(self, fields: dict[str, str]) -> str:
        return "struct_pack(" + ", ".join(f"{name} := {expr}" for name, expr in fields.items()) + ")"

    def to_json(self, expr: str) -> str:
        return f"to_json({expr})"

    def temp_table(self, name: str, select: str) -> str:
        return f"CREATE OR REPLACE TEMP TABLE {name} AS {select}"

    def all_columns_except(self, *columns: str) -> str:
        return f"* EXCLUDE ({', '.join(columns)})"

    def sample_rows(self, n: int) -> str:
        return f" USING SAMPLE {int(n)} ROWS"

    def asof_join(self, table: str, on: str) -> str:
        return f"ASOF JOIN {table} ON {on}"


DUCKDB = DuckDBDialect()
