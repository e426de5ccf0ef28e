"""The validator weights of each era, as the previous era's era-end block set them (``casper_era_weights``).

Weights are U512 decimal strings on the wire; they are summed here as Python integers (no overflow) and
shares are their ratios as floats. An era whose previous era-end block was never stored (the first era a
node was followed from, or pruned) has **no known weights**: its answers say so instead of guessing.
"""

from __future__ import annotations

from bftscope.store.base import Store

__all__ = ["NO_WEIGHTS", "era_weights"]

NO_WEIGHTS = "weights unknown: the era-end block of the previous era is not stored"


def era_weights(store: Store, run_id: int, lo_era: int, hi_era: int) -> dict[int, dict[str, int]]:
    """era → validator → weight, for the eras ``lo_era..hi_era`` that have weights."""
    out: dict[int, dict[str, int]] = {}
    rows = store.query("SELECT era_id, validator, weight FROM casper_era_weights WHERE run_id = :run "
                       "AND era_id BETWEEN :lo AND :hi ORDER BY era_id, validator",
                       {"run": run_id, "lo": lo_era, "hi": hi_era})  # fmt: skip
    for era, validator, weight in rows:
        try:
            out.setdefault(int(era), {})[str(validator)] = int(weight)
        except ValueError:  # not a decimal: the era's weights are not known exactly, so not at all
            out[int(era)] = {}
    return {era: w for era, w in out.items() if w}
