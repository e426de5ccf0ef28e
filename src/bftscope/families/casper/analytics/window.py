"""The time window of the Casper answers, and their percentile summaries.

A window selects **blocks by their own timestamp** (the block header's time, the chain's clock): the block
times, eras, proposers and signature answers are about the blocks inside it. Deploys are selected by the
deploy's own timestamp (its header's, from DeployAccepted or else from DeployProcessed), an expired deploy
never seen accepted by when it expired was received. Bounds are inclusive, either one open; ``WHOLE`` is
everything. Nanosecond bounds (as the API and CLI parse them) are kept in milliseconds, the unit of Casper
timestamps: a bound inside a millisecond keeps only the whole milliseconds inside the window.

:func:`stats_sql` and :func:`stats_of` give the summary every latency answer uses: count, p50/p90/p99 (exact,
linear interpolation — ``store.dialect.quantile``), mean, min and max, in milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bftscope.store.dialect import Dialect
from bftscope.timeutil import format_ns

__all__ = ["QUANTILES", "STATS_COLUMNS", "WHOLE", "Window", "stats_of", "stats_sql"]

_FAR = 2**62
QUANTILES = (0.5, 0.9, 0.99)
STATS_COLUMNS = ("count", "p50_ms", "p90_ms", "p99_ms", "mean_ms", "min_ms", "max_ms")


@dataclass(frozen=True)
class Window:
    """Inclusive bounds in epoch nanoseconds (None: open)."""

    from_ns: int | None = None
    to_ns: int | None = None

    @classmethod
    def of(cls, bounds: tuple[int | None, int | None] | None) -> Window:
        """From :func:`bftscope.analytics.windows.parse_bounds` (None: the whole run)."""
        return WHOLE if bounds is None else cls(*bounds)

    @property
    def lo_ms(self) -> int:
        return -_FAR if self.from_ns is None else -(-self.from_ns // 1_000_000)  # ceiling

    @property
    def hi_ms(self) -> int:
        return _FAR if self.to_ns is None else self.to_ns // 1_000_000

    def params(self, run_id: int) -> dict[str, int]:
        return {"run": run_id, "lo": self.lo_ms, "hi": self.hi_ms}

    def describe(self) -> dict[str, str | None]:
        return {"from": None if self.from_ns is None else format_ns(self.from_ns),
                "to": None if self.to_ns is None else format_ns(self.to_ns)}  # fmt: skip


WHOLE = Window()


def stats_sql(dialect: Dialect, expr: str) -> str:
    """The select list of :data:`STATS_COLUMNS` over ``expr`` (milliseconds) in the group."""
    qs = ", ".join(dialect.quantile(expr, q) for q in QUANTILES)
    return f"count({expr}), {qs}, avg({expr}), min({expr}), max({expr})"


def stats_of(row: tuple[Any, ...] | list[Any]) -> dict[str, Any]:
    """A summary from the :func:`stats_sql` columns; without samples every figure is None and count 0."""
    count = int(row[0] or 0)
    out: dict[str, Any] = {"count": count}
    for name, value in zip(STATS_COLUMNS[1:], row[1:], strict=True):
        out[name] = None if count == 0 or value is None else float(value)
    return out
