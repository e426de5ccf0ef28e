"""Upload receive throughput and peak memory: multipart parser + SHA-256 + disk, no HTTP.

Streams a generated multipart body of about ``--size-mb`` MB (one file part of that size plus two
text fields) in 64 KiB chunks through :func:`bftscope.control.uploads.receive_multipart` into a
temporary folder, ``--runs`` times. The body is generated lazily from one pre-built 64 KiB block, so
the generator costs next to nothing and holds nothing. Prints and writes to ``bench/out/upload.json``
the median MB/s (MB = 10^6 bytes of request body), the median CPU seconds of the process per run
(the parser + hash cost, which unlike wall time does not swing with the kernel's disk writeback)
and the peak RSS of the process (``resource.getrusage``, which only ever grows: it is the peak over
all runs). ``--tmp /dev/shm`` takes the disk out of the measurement.

    .venv/bin/python bench/upload_bench.py --runs 3 --size-mb 1000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

from bftscope.control.uploads import UploadLimits, receive_multipart

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
CHUNK = 64 * 1024
BOUNDARY = "bench-boundary-7f3a9c"


def _head() -> bytes:
    fields = "".join(
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'
        for k, v in (("name", "bench"), ("description", "generated upload"))
    )
    file_head = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="logfiles"; filename="node0.log"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    )
    return (fields + file_head).encode()


async def _body(file_bytes: int) -> AsyncIterator[bytes]:
    """The whole request body in CHUNK-sized pieces, as an ASGI server would hand it over."""
    line = b'I[2024-01-01|00:00:00.000] Received proposal module=consensus height=1 round=0\n'
    block = (line * (CHUNK // len(line) + 1))[:CHUNK]
    yield _head()
    full, rest = divmod(file_bytes, CHUNK)
    for _ in range(full):
        yield block
    if rest:
        yield block[:rest]
    yield f"\r\n--{BOUNDARY}--\r\n".encode()


def _peak_rss_mb() -> float:
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return kib / 1024 if sys.platform != "darwin" else kib / (1024 * 1024)


async def _one_run(file_bytes: int, tmp: Path) -> tuple[float, float, int]:
    dest = tmp / "uploads"
    dest.mkdir()
    limits = UploadLimits()
    started, cpu_started = time.perf_counter(), time.process_time()
    result = await receive_multipart(_body(file_bytes), f"multipart/form-data; boundary={BOUNDARY}", dest, limits)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    assert len(result.files) == 1 and result.files[0].size == file_bytes, result
    body_bytes = len(_head()) + file_bytes + len(f"\r\n--{BOUNDARY}--\r\n")
    shutil.rmtree(dest)
    return elapsed, cpu, body_bytes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--size-mb", type=int, default=1000, help="size of the uploaded file, MB (10^6 bytes)")
    ap.add_argument("--tmp", type=Path, default=None, help="folder to write into (default: system temp)")
    args = ap.parse_args()
    file_bytes = args.size_mb * 1_000_000
    rates: list[float] = []
    cpus: list[float] = []
    with tempfile.TemporaryDirectory(dir=args.tmp, prefix="upload-bench-") as tmp_name:
        for run in range(args.runs):
            elapsed, cpu, body_bytes = asyncio.run(_one_run(file_bytes, Path(tmp_name)))
            rates.append(body_bytes / 1e6 / elapsed)
            cpus.append(cpu)
            print(f"run {run + 1}: {body_bytes / 1e6:.0f} MB in {elapsed:.2f} s = {rates[-1]:.0f} MB/s, "
                  f"{cpu:.2f} CPU-s", flush=True)  # fmt: skip
    result = {
        "what": "receive_multipart: parse + sha256 + write, 64 KiB chunks, no HTTP",
        "size_mb": args.size_mb,
        "runs": args.runs,
        "mb_per_s_median": round(statistics.median(rates), 1),
        "mb_per_s_runs": [round(r, 1) for r in rates],
        "cpu_s_median": round(statistics.median(cpus), 2),
        "peak_rss_mb": round(_peak_rss_mb(), 1),
        "dest": str(args.tmp or tempfile.gettempdir()),
        "cpus": os.cpu_count(),
    }
    OUT.mkdir(exist_ok=True)
    (OUT / "upload.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
