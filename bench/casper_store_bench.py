"""The Casper store's write rate as its tables grow: does de-duplication slow down, does memory climb?

Writes ``--events`` FinalitySignature events (100 validators per block, 50 blocks per era, the shape of the real
fixture) from three nodes in turn, in batches of ``--batch``, through :class:`CasperStore` into a fresh embedded
store, and prints per slice of the run the median batch rate and the process's RSS. A third of the batches are
sent again by another node (duplicates at the entity level), as three followed nodes do.

    .venv/bin/python bench/casper_store_bench.py --events 2000000 --batch 5000
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import orjson

from bftscope.config import Settings
from bftscope.families.casper.decoder import CasperDecoder
from bftscope.families.casper.store import CasperStore
from bftscope.sources.base import Frame
from bftscope.store.duckdb import DuckDBStore


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


def _frames(first: int, n: int) -> list[Frame]:
    out = []
    for j in range(first, first + n):
        block = j // 100
        sig = {"block_hash": f"{block:064x}", "era_id": block // 50, "signature": "01" + "ab" * 64,
               "public_key": "01" + f"{j % 100:064x}"}  # fmt: skip
        body = {"FinalitySignature": sig}
        out.append(Frame(orjson.dumps(body), id=str(j)))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--batch", type=int, default=5000)
    ap.add_argument("--slices", type=int, default=10)
    args = ap.parse_args()
    settings = Settings(data_dir=tempfile.mkdtemp(prefix="casper-bench-"))
    store = DuckDBStore.open(settings.store_path, settings)
    run = store.get_or_create_run("net:bench", "casper")
    writer = CasperStore(store, run.id)
    decoders = [CasperDecoder(f"node{k}:9999", "sigs") for k in range(3)]
    batches = args.events // args.batch
    per_slice = max(1, batches // args.slices)
    rates: list[float] = []
    print(f"{'events stored':>14} {'median batch rate':>18} {'RSS':>9}")
    for b in range(batches):
        events = [e for f in _frames(b * args.batch, args.batch) for e in decoders[b % 3].feed(f)]
        started = time.perf_counter()
        writer.write(events)
        if b % 3 == 2:  # another node sends the same entities
            writer.write([e for f in _frames(b * args.batch, args.batch) for e in decoders[(b + 1) % 3].feed(f)])
        rates.append(args.batch / (time.perf_counter() - started))
        if (b + 1) % per_slice == 0:
            print(f"{(b + 1) * args.batch:>14,} {statistics.median(rates):>13,.0f} ev/s {_rss_mib():>6,.0f} MiB",
                  flush=True)  # fmt: skip
            rates = []
    store.close()


if __name__ == "__main__":
    main()
