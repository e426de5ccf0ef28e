"""Engine-specific SQL fragments, so callers write one query for every backend.

Only what differs between DuckDB and ClickHouse lives here: exact percentiles, epoch conversions,
time bucketing. Percentiles are exact with linear interpolation everywhere (NumPy's default;
DuckDB ``quantile_cont``; ClickHouse ``quantileExactInclusive``).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DIALECTS", "Dialect"]


@dataclass(frozen=True)
class Dialect:
    name: str

    def quantile(self, expr: str, q: float) -> str:
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"quantile out of range: {q}")
        if self.name == "clickhouse":
            return f"quantileExactInclusive({q!r})({expr})"
        return f"quantile_cont({expr}, {q!r})"

    def ns_to_timestamp(self, expr: str) -> str:
        if self.name == "clickhouse":
            return f"fromUnixTimestamp64Nano({expr})"
        return f"make_timestamp(({expr}) // 1000)"

    def bucket_ns(self, expr: str, width_ns: int) -> str:
        return f"(({expr}) // {int(width_ns)}) * {int(width_ns)}"


DIALECTS = {"duckdb": Dialect("duckdb"), "clickhouse": Dialect("clickhouse")}
