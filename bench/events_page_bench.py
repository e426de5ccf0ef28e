"""Time of a 10 000-entry ``/events`` page without the HTTP server: ``fetch_page`` plus the body assembly the
route does, on a run already ingested (e.g. ``bftscope simulate OUT --heights 250`` then
``bftscope ingest -r perf --data-dir STORE OUT`` — ~250 k events, ~50 k deliveries).

    .venv/bin/python bench/events_page_bench.py --data-dir STORE --run perf --calls 7

Pages at the start, a quarter, the middle and three quarters of the run (cursor paging), and one ``before``
page; prints the median per position and over all. Run it with ``PYTHONPATH=OTHER/src`` to time another
checkout of the code against the same store, back to back.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import bftscope
from bftscope.api import eventpage
from bftscope.config import Settings
from bftscope.store import open_store
from bftscope.store.eventquery import EventFilter


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", type=Path, required=True)
    ap.add_argument("--run", default="perf")
    ap.add_argument("--calls", type=int, default=7)
    ap.add_argument("--limit", type=int, default=10_000)
    args = ap.parse_args()
    settings = Settings(data_dir=args.data_dir)
    store = open_store(settings, read_only=True)
    rid = store.get_run(args.run).id
    count, lo, hi = (int(x) for x in store.query("SELECT count(*), min(ts), max(ts) FROM events WHERE run_id = ?",
                                                  [rid])[0])  # fmt: skip
    span = (count, lo, hi)
    ids = store.query("SELECT ts, id FROM events WHERE run_id = ? ORDER BY ts, id", [rid])
    marks = {"start": None, **{f"{q}%": tuple(ids[len(ids) * q // 100]) for q in (25, 50, 75)}}
    flt = EventFilter()
    page = eventpage.renderer(store, rid)  # the run's family renders its events
    keep = {"tables": page.lookup_tables(store, rid)}  # kept between pages, as the server does
    print(f"bftscope from {Path(bftscope.__file__).parent}; {count} events", flush=True)
    every: list[float] = []
    every_cpu: list[float] = []
    for name, after in [*marks.items(), ("before 50%", "before")]:
        times, cpu = [], []
        for _ in range(args.calls):
            t, c = time.perf_counter(), time.process_time()
            if after == "before":
                rows = page.fetch_page(store, rid, flt, limit=args.limit + 1, after=None, before=marks["50%"], offset=0,
                                  span=span, **keep)  # fmt: skip
            else:
                rows = page.fetch_page(store, rid, flt, limit=args.limit + 1, after=after, before=None, offset=0,
                                       span=span, **keep)  # fmt: skip
            body = b'{"data":[' + ",".join(r[2] for r in rows).encode() + b"]}"
            times.append((time.perf_counter() - t) * 1000)
            cpu.append((time.process_time() - c) * 1000)
        every += times
        every_cpu += cpu
        print(f"{name:>11}: median {statistics.median(times):6.0f} ms, CPU {statistics.median(cpu):6.0f} ms"
              f" ({len(rows)} entries, {len(body)} bytes)", flush=True)  # fmt: skip
    print(f"all pages: median {statistics.median(every):.0f} ms, CPU {statistics.median(every_cpu):.0f} ms")
    store.close()


if __name__ == "__main__":
    main()
