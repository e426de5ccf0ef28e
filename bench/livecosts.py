"""What a process following live networks spends, measured so that other jobs on the machine do not distort it.

Wall-clock latency on a shared machine is noisy; these are not (or much less): how long the store's writer lock
is held (longest hold, total per minute) and how long the follower's event loop waited for it, CPU seconds the
process spent (and those spent inside derive and rollup calls, in the calling threads), the CPU of the replay
processes feeding it, and memory by component (DuckDB's buffers by tag, Python's traced allocations). Used by
``live_follow_bench.py``: each counter is read and reset once a minute into that minute's row.
"""

from __future__ import annotations

import ctypes
import gc
import os
import re
import sys
import threading
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bftscope.families import registry
from bftscope.store.base import Store

__all__ = ["CallMeter", "Latencies", "LockMeter", "StatementMeter", "children_cpu_s", "duckdb_memory_mib",
           "malloc_mib", "object_counts", "process_cpu_s", "python_mib"]


class LockMeter:
    """Stands in for a store's writer lock (a re-entrant lock): the same behaviour, plus how long it was held
    (outermost acquire to its release) and how long ``watched`` threads (the follower's event loop) waited."""

    def __init__(self, inner: Any, watched: set[int]) -> None:
        self._inner = inner
        self._local = threading.local()
        self._watched = watched
        self._guard = threading.Lock()
        self.hold_total = self.hold_max = self.wait_total = self.wait_max = 0.0
        self.longest: list[tuple[float, str]] = []  # the period's longest holds: (seconds, holder thread's name)

    def reset(self) -> dict[str, Any]:
        """This period's figures (seconds); the next period starts from zero."""
        with self._guard:
            out = {"lock_hold_total_s": round(self.hold_total, 3), "lock_hold_max_s": round(self.hold_max, 3),
                   "loop_lock_wait_total_s": round(self.wait_total, 3),
                   "loop_lock_wait_max_s": round(self.wait_max, 3),
                   "lock_longest": [(round(t, 3), name) for t, name in sorted(self.longest, reverse=True)]}  # fmt: skip
            self.hold_total = self.hold_max = self.wait_total = self.wait_max = 0.0
            self.longest = []
        return out

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        depth = getattr(self._local, "depth", 0)
        asked = time.perf_counter()
        got = bool(self._inner.acquire(blocking, timeout))
        if not got:
            return False
        if depth == 0:
            now = time.perf_counter()
            self._local.since = now
            if threading.get_ident() in self._watched:
                with self._guard:
                    self.wait_total += now - asked
                    self.wait_max = max(self.wait_max, now - asked)
        self._local.depth = depth + 1
        return True

    def release(self) -> None:
        depth = self._local.depth - 1
        self._local.depth = depth
        if depth == 0:
            held = time.perf_counter() - self._local.since
            with self._guard:
                self.hold_total += held
                self.hold_max = max(self.hold_max, held)
                if len(self.longest) < 5 or held > min(self.longest)[0]:
                    holder = re.sub(r"\d+", "#", threading.current_thread().name)
                    self.longest = sorted([*self.longest, (held, holder)])[-5:]
        self._inner.release()

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


class CallMeter:
    """Wraps the chain family's derive and rollup steps: wall seconds and the calling thread's CPU seconds
    (DuckDB's own worker threads are in the process CPU only), and how many calls."""

    STEPS = ("derive", "derive_incremental", "refresh_rollups")

    def __init__(self, chain: str = "cometbft") -> None:
        self._guard = threading.Lock()
        self._totals: dict[str, list[float]] = {s: [0.0, 0.0, 0.0] for s in self.STEPS}
        cls = type(registry.family(chain))
        for step in self.STEPS:
            setattr(cls, step, self._wrap(step, getattr(cls, step)))

    def _wrap(self, step: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            wall, cpu = time.perf_counter(), time.thread_time()
            try:
                return fn(*args, **kwargs)
            finally:
                with self._guard:
                    t = self._totals[step]
                    t[0] += time.perf_counter() - wall
                    t[1] += time.thread_time() - cpu
                    t[2] += 1

        return timed

    def reset(self) -> dict[str, float]:
        with self._guard:
            out: dict[str, float] = {}
            for step, (wall, cpu, n) in self._totals.items():
                out[f"{step}_wall_s"], out[f"{step}_cpu_s"], out[f"{step}_calls"] = round(wall, 2), round(cpu, 2), n
                self._totals[step] = [0.0, 0.0, 0.0]
            return out


def process_cpu_s() -> float:
    t = os.times()
    return t.user + t.system


def children_cpu_s(pids: list[int]) -> float:
    """CPU seconds of running child processes (not reaped, so os.times does not count them)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / tick


def duckdb_memory_mib(store: Store) -> dict[str, float]:
    """DuckDB's memory by tag (MiB), with its total."""
    rows = store.query("SELECT tag, memory_usage_bytes FROM duckdb_memory() WHERE memory_usage_bytes > 0")
    out = {str(tag).lower(): round(int(b) / 2**20, 1) for tag, b in rows}
    out["total"] = round(sum(out.values()), 1)
    return out


def python_mib() -> float | None:
    """Python's traced allocations (MiB), when tracemalloc is on."""
    if not tracemalloc.is_tracing():
        return None
    return round(tracemalloc.get_traced_memory()[0] / 2**20, 1)


class StatementMeter:
    """Wall seconds of the store's write statements by their first words (where the writer's time goes)."""

    def __init__(self, store: Any) -> None:
        self._guard = threading.Lock()
        self.totals: dict[str, list[float]] = {}
        for name in ("execute", "execute_with"):
            setattr(store, name, self._wrap(getattr(store, name)))

    def _wrap(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(sql: str, *args: Any, **kwargs: Any) -> Any:
            began = time.perf_counter()
            try:
                return fn(sql, *args, **kwargs)
            finally:
                key = " ".join(sql.split())[:70]
                with self._guard:
                    t = self.totals.setdefault(key, [0.0, 0.0, 0])
                    took = time.perf_counter() - began
                    t[0] += took
                    t[1] = max(t[1], took)
                    t[2] += 1

        return timed

    def top(self, n: int = 12) -> list[tuple[str, float, float, int]]:
        with self._guard:
            rows = sorted(self.totals.items(), key=lambda kv: -kv[1][0])[:n]
            return [(k, round(v[0], 2), round(v[1], 3), int(v[2])) for k, v in rows]


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]  # fmt: skip


def malloc_mib() -> dict[str, float] | None:
    """glibc's heap (DuckDB and Python allocate there): bytes in use, and free but kept by the process."""
    try:
        fn = ctypes.CDLL(None).mallinfo2
    except (OSError, AttributeError):
        return None
    fn.restype = _MallInfo2
    m = fn()
    return {"in_use": round((m.uordblks + m.hblkhd) / 2**20, 1), "free_kept": round(m.fordblks / 2**20, 1),
            "python_blocks_k": round(sys.getallocatedblocks() / 1000)}  # fmt: skip


class Latencies:
    """Latencies kept as counts of 1 ms bins (up to ``limit_s``; above it, the last bin): percentiles to the
    millisecond in constant memory — a list of every sample grew the measuring process by ~100 MiB per
    10 minutes of 20 networks, which the memory figure then counted as the follower's."""

    def __init__(self, limit_s: float = 120.0) -> None:
        self.counts = [0] * (int(limit_s * 1000) + 1)
        self.n = 0
        self.max = 0.0

    def add(self, values: list[float]) -> None:
        last = len(self.counts) - 1
        for v in values:
            self.counts[min(last, max(0, int(v * 1000)))] += 1
        self.n += len(values)
        self.max = max(self.max, max(values, default=0.0))

    def pct(self, q: float) -> float | None:
        """The ``q`` quantile, to the millisecond above (the bin's upper edge)."""
        if not self.n:
            return None
        rank = min(self.n - 1, int(q * self.n))
        seen = 0
        for i, c in enumerate(self.counts):
            seen += c
            if seen > rank:
                return (i + 1) / 1000
        return self.max


def object_counts() -> Counter[str]:
    """Live Python objects by type name (gc-tracked only: a pause of a few tenths of a second)."""
    return Counter(type(o).__name__ for o in gc.get_objects())
