"""Process-wide settings a bftscope process applies when it starts (the command line calls :func:`apply`).

The GIL switch interval. The store's writer thread runs DuckDB statements that scan Arrow tables owned by
Python, and DuckDB takes the GIL back several times per statement. While another thread is busy in Python (a
follower decoding frames, the server encoding answers), each of those takes waits out CPython's switch interval
(5 ms by default): measured on this machine, a loop of 30 inserts of 4,000 rows took 0.23 s alone and 2.98 s
beside one busy Python thread; with a 0.5 ms interval 0.5 s, the busy thread losing ~5 % of its speed. Live
following and serving are exactly that mix, so bftscope shortens the interval for its own processes.

The cycle collector's thresholds. A follower at 20,000 events/s allocates a few hundred thousand containers a
second (decoded events, their fields, batches); CPython's default collects the youngest generation every 700
net allocations and, each time enough survive, walks every object the process holds — with the batches in
flight surviving, that was a third of the Casper pipeline's time (bench/casper_bench.py: 10,500 → 16,800
events/s with a larger first threshold, all else equal). Nearly all of this memory is freed by reference
counting; the collector is only for cycles, which bftscope's hot paths do not make, so it runs less often.
"""

from __future__ import annotations

import gc
import sys

__all__ = ["GC_THRESHOLDS", "GIL_SWITCH_INTERVAL_S", "apply"]

GIL_SWITCH_INTERVAL_S = 0.0005
GC_THRESHOLDS = (20_000, 50, 100)  # CPython's defaults: (700, 10, 10)


def apply() -> None:
    """Apply the process-wide settings (idempotent)."""
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    gc.set_threshold(*GC_THRESHOLDS)
