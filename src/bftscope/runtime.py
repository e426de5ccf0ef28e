"""Process-wide settings a bftscope process applies when it starts (the command line calls :func:`apply`).

The GIL switch interval. The store's writer thread runs DuckDB statements that scan Arrow tables owned by
Python, and DuckDB takes the GIL back several times per statement. While another thread is busy in Python (a
follower decoding frames, the server encoding answers), each of those takes waits out CPython's switch interval
(5 ms by default): measured on this machine, a loop of 30 inserts of 4,000 rows took 0.23 s alone and 2.98 s
beside one busy Python thread; with a 0.5 ms interval 0.5 s, the busy thread losing ~5 % of its speed. Live
following and serving are exactly that mix, so bftscope shortens the interval for its own processes.
"""

from __future__ import annotations

import sys

__all__ = ["GIL_SWITCH_INTERVAL_S", "apply"]

GIL_SWITCH_INTERVAL_S = 0.0005


def apply() -> None:
    """Apply the process-wide settings (idempotent)."""
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
