"""Where a Casper bench run's latency came from (``bench/casper_bench.py --trace PATH``).

Installed in the writer's process before the run, :class:`Tracer` times the calls that can hold up the path from
an event's receipt to its subscribers — each write of the sink's writer thread (``CasperSink._store``) and its
parts (``CasperStore.plan``, ``Journal.append`` with its sync), each insert of the applier
(``CasperSink._apply``), each drop of a generation of remembered keys (``_Known._rotate``) — and every garbage
collection (its generation and pause), and notes when each published batch left the writer. After the run,
:meth:`Tracer.report` splits each frame's latency into receipt → publish (the writer's process) and publish →
subscriber (Redis, the serving instance, the WebSocket, the subscriber), and lists the seconds whose p99 was over
``slow_ms`` with what ran in them. The per-frame figures are written to ``PATH.npz`` and the timed calls to
``PATH.json``.

Wrapping these methods costs the writer ~1 µs a call (a few hundred calls a second).
"""

from __future__ import annotations

import gc
import json
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["Tracer"]


class Tracer:
    def __init__(self) -> None:
        self.calls: list[tuple[str, float, float]] = []  # (what, start epoch s, seconds)
        self.published: list[tuple[int, int]] = []  # (first out_id of a batch, epoch ns it was published)
        self._gc_started = 0.0

    def install(self) -> None:
        from bftscope.families.casper import publish, sink, store
        from bftscope.families.casper.journal import Journal

        for cls, name in ((sink.CasperSink, "_store"), (store.CasperStore, "plan"), (Journal, "append"),
                          (sink.CasperSink, "_apply"), (store._Known, "_rotate")):  # fmt: skip
            self._time(cls, name)
        original = publish.Publisher._publish

        def published(pub: Any, stored: Any) -> None:
            original(pub, stored)
            self.published.append((stored[0].out_id, time.time_ns()))

        publish.Publisher._publish = published  # type: ignore[method-assign]
        gc.callbacks.append(self._gc)

    def _time(self, cls: Any, name: str) -> None:
        original = getattr(cls, name)
        calls = self.calls

        def timed(*args: Any, **kw: Any) -> Any:
            started = time.time()
            try:
                return original(*args, **kw)
            finally:
                calls.append((name, started, time.time() - started))

        setattr(cls, name, timed)

    def _gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._gc_started = time.time()
        else:
            self.calls.append((f"gc{info['generation']}", self._gc_started, time.time() - self._gc_started))

    def report(self, path: Path, frames: list[tuple[int, int, int]], slow_ms: float = 150.0) -> dict[str, Any]:
        """``frames``: (out_id, received_ns, arrival_ns) of each frame a subscriber got."""
        if not frames or not self.published:
            raise ValueError("nothing was published or delivered: no latency to split")
        out_id, received, arrived = (np.array(c, dtype=np.int64) for c in zip(*frames, strict=True))
        firsts = np.array([f for f, _ in self.published], dtype=np.int64)
        order = np.argsort(firsts, kind="stable")
        firsts, at = firsts[order], np.array([t for _, t in self.published], dtype=np.int64)[order]
        published = at[np.searchsorted(firsts, out_id, side="right") - 1]
        total = (arrived - received) / 1e6
        writer = (published - received) / 1e6
        np.savez_compressed(path.with_suffix(".npz"), arrived_s=arrived / 1e9, latency_ms=total,
                            receipt_to_publish_ms=writer, publish_to_subscriber_ms=total - writer)  # fmt: skip
        path.with_suffix(".json").write_text(json.dumps(self.calls))

        def pct(a: np.ndarray) -> dict[str, float]:
            return {"p50": round(float(np.percentile(a, 50)), 1), "p99": round(float(np.percentile(a, 99)), 1),
                    "max": round(float(a.max()), 1)}  # fmt: skip

        by_name: dict[str, list[float]] = defaultdict(list)
        for name, _, s in self.calls:
            by_name[name].append(s * 1000)
        calls = {n: {"count": len(v), "total_s": round(sum(v) / 1000, 2), **pct(np.array(v))}
                 for n, v in by_name.items()}  # fmt: skip
        t0 = arrived.min() / 1e9
        second = ((arrived / 1e9 - t0) // 1).astype(np.int64)
        slow = []
        for s in range(int(second.max()) + 1):
            m = second == s
            if m.any() and np.percentile(total[m], 99) > slow_ms:
                ran = sorted(((n, round(d * 1000)) for n, st, d in self.calls if s <= st - t0 < s + 1 and d > 0.03),
                             key=lambda x: -x[1])[:6]  # fmt: skip
                slow.append({"second": s, "p99_ms": round(float(np.percentile(total[m], 99))),
                             "receipt_to_publish_p99": round(float(np.percentile(writer[m], 99))),
                             "publish_to_subscriber_p99": round(float(np.percentile((total - writer)[m], 99))),
                             "over_30ms": ran})  # fmt: skip
        return {"receipt_to_publish_ms": pct(writer), "publish_to_subscriber_ms": pct(total - writer),
                "calls_ms": calls, "slow_seconds": slow}  # fmt: skip
