"""The ingest pipeline: paths → planned sources → parallel parsing → one writer → a result.

1. **Plan** (this process, :mod:`bftscope.ingest.plan`): discover inputs (what is not read is
   reported with its reason), detect formats, hash contents (a source already in the run, or
   given twice, is a duplicate; a grown file continues where it stopped), learn each node's
   identity and resolve it to a node of the run, cut splittable files into byte ranges (*units*).
2. **Parse**: units run in worker processes (or inline for small inputs); each streams Arrow
   batches back through a bounded queue, so memory stays flat whatever the input size.
3. **Write**: this process appends batches to the store as they arrive (the store's single
   writer) and closes each source with its merged parse report. A source that fails is removed
   with its events and reported; the others are kept.
4. **Derive**: the run's chain family builds what it derives from the events (CometBFT first infers
   the p2p ids no file stated), then the run's derived tables and rollups are rebuilt unless current
   (:mod:`bftscope.ingest.derived`) — also when every file was a duplicate, so a run left stale by
   a killed ingest is repaired by the next one.

Interruption: a Ctrl-C (``KeyboardInterrupt``) stops the parsers at once, keeps the sources that
were completely written, removes the half-written ones with their events (so every listing agrees),
and raises :class:`IngestInterrupted` saying what was kept. Running the same ingest again finishes
the job: kept files are duplicates, the rest are read, the derived tables are rebuilt. A ``kill
-9`` leaves half-written sources that the next writer to open the store removes
(:meth:`Store.recover_interrupted`). A run this ingest created and left without any source is
removed, whatever the reason.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bftscope.config import Settings
from bftscope.errors import NotFoundError, NothingIngestedError
from bftscope.families import registry
from bftscope.families.base import ChainFamily
from bftscope.families.registry import format_by_name
from bftscope.ingest import derived
from bftscope.ingest.derived import PHASES, Phase
from bftscope.ingest.discover import InputFile, Skipped, detect_format, discover
from bftscope.ingest.parsereport import ParseReport
from bftscope.ingest.plan import FileResult, Plan, plan_files, skipped_result
from bftscope.ingest.worker import Unit, WorkerPool, run_inline
from bftscope.store.base import RunRecord, Store

__all__ = ["PHASES", "FileResult", "IngestInterrupted", "IngestResult", "Phase", "Progress", "ingest"]

INLINE_BELOW_BYTES = 32 * 1024 * 1024

Progress = Callable[[int, int, int], None]  # (bytes done, bytes total, lines done)


@dataclass
class IngestResult:
    run: str
    run_id: int
    files: list[FileResult]
    seconds: float
    bytes_total: int
    derived: dict[str, int] = field(default_factory=dict)  # row counts of the rebuilt derived tables
    # Seconds per phase (keys of PHASES): "parse_store" (planning, parsing, normalizing, storing),
    # "derive" (derived tables), "rollups" (whole-run metric answers).
    phases: dict[str, float] = field(default_factory=dict)
    # Per node: its identity, where it came from and any disagreement between sources (the family's).
    identities: list[dict[str, Any]] = field(default_factory=list)

    @property
    def events(self) -> int:
        return sum(f.report.events for f in self.files if f.status == "ingested")

    @property
    def skipped(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for f in self.files:
            for reason, n in f.report.skipped.items():
                out[reason] = out.get(reason, 0) + n
        return dict(sorted(out.items(), key=lambda kv: -kv[1]))


class IngestInterrupted(KeyboardInterrupt):
    """A Ctrl-C during an ingest, after it kept what was complete. Still a ``KeyboardInterrupt``, so a
    caller that does not know it stops as it would on any Ctrl-C."""

    def __init__(self, run: str, events: int, files: int, phase: str) -> None:
        super().__init__(f"interrupted during {phase}: kept {events:,} events of {files} files")
        self.run, self.events, self.files, self.phase = run, events, files, phase


@contextmanager
def _no_second_interrupt() -> Iterator[None]:
    """Hold off a second Ctrl-C while the store is put in order (only the main thread gets signals)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, lambda *_: None)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _existing_run(store: Store, name: str) -> RunRecord | None:
    try:
        return store.get_run(name)
    except NotFoundError:
        return None


def _family_of(files: list[InputFile]) -> ChainFamily:
    """The family of a new run: that of the first file whose format is recognised (the default family when
    none is; the ingest then reports every file as unrecognised)."""
    formats = registry.all_formats()
    for f in files:
        fmt, _ = detect_format(f, formats)
        if fmt is not None:
            return registry.family_of_format(fmt.name)
    return registry.default_family()


def ingest(
    store: Store,
    run_name: str,
    paths: list[Path],
    settings: Settings,
    *,
    progress: Progress | None = None,
    workers: int | None = None,
    on_phase: Phase | None = None,
) -> IngestResult:
    """Ingest files and folders into a run (created if new). See the module docstring."""
    t0 = time.perf_counter()
    found = discover(paths)
    existing = _existing_run(store, run_name)
    existed = existing is not None
    family = registry.family(existing.chain) if existing is not None else _family_of(found.files)
    run = store.get_or_create_run(run_name, family.name)
    try:
        return _ingest(store, run, family, found.files, found.skipped, settings, t0, progress, workers, on_phase)
    except BaseException:
        with _no_second_interrupt():
            if not existed and not any(s.status == "complete" for s in store.sources(run.id)):
                store.delete_run(run.id)
        raise


def _ingest(
    store: Store,
    run: RunRecord,
    family: ChainFamily,
    files: list[InputFile],
    skipped: list[Skipped],
    settings: Settings,
    t0: float,
    progress: Progress | None,
    workers: int | None,
    on_phase: Phase | None,
) -> IngestResult:
    n_workers = workers if workers is not None else (settings.ingest_workers or os.cpu_count() or 1)
    pool = None
    if n_workers > 1 and sum(f.path.stat().st_size for f in files) >= INLINE_BELOW_BYTES:
        # Start the parsers now: their start-up overlaps with hashing and identity scans below.
        pool = WorkerPool(min(n_workers, len(files) + 1), settings.ingest_batch_rows, settings.max_line_bytes)
    plans = [Plan(f, FileResult(f.name, None, None, "pending", size=f.path.stat().st_size)) for f in files]
    # Memory: while parsers run, DuckDB's buffer pool is kept small so that parsers and writer together
    # stay within the ingest's budget whatever the input size; deriving gets the room the parsers left.
    try:
        with store.memory_limit(settings.ingest_parse_memory_limit):
            _parse_and_write(store, run, family, plans, settings, pool, progress)
    except KeyboardInterrupt:
        with _no_second_interrupt():
            if pool is not None:
                pool.terminate()
                pool = None
            kept = _close_sources(store, run, plans, interrupted=True)
        raise IngestInterrupted(run.name, sum(p.result.report.events for p in kept), len(kept), "parsing") from None
    finally:
        if pool is not None:
            pool.close()  # before deriving: idle parsers would only hold memory
    _close_sources(store, run, plans, interrupted=False)
    phases = {"parse_store": time.perf_counter() - t0}
    results = [p.result for p in plans] + [skipped_result(s) for s in skipped]
    _refuse_nothing(run, results)
    counts: dict[str, int] = {}
    try:
        with store.memory_limit(settings.ingest_derive_memory_limit):
            if not derived.is_current(store, run.id):
                counts = derived.build(store, run.id, on_phase=on_phase, phases=phases)
    except KeyboardInterrupt:
        done = [f for f in results if f.status == "ingested"]
        raise IngestInterrupted(
            run.name, sum(f.report.events for f in done), len(done), "derived tables and rollups"
        ) from None
    total = sum(p.result.size - p.result.start for p in plans if p.result.status in ("ingested", "failed"))
    identities = family.node_identities(store, run.id)
    return IngestResult(run.name, run.id, results, time.perf_counter() - t0, total, counts, phases, identities)


def _parse_and_write(
    store: Store,
    run: RunRecord,
    family: ChainFamily,
    plans: list[Plan],
    settings: Settings,
    pool: WorkerPool | None,
    progress: Progress | None,
) -> None:
    """Plan, parse and write every source (a source that fails is marked so in its plan)."""
    units: list[Unit] = []
    plan_files(store, run.id, plans, settings, units, pool, family)
    if any(p.result.status == "ingesting" for p in plans):
        # Before the first event is written: from here until derived.build completes, the run's derived
        # tables are not current, whatever happens to this process.
        store.set_derived_version(run.id, None)
    total = sum(p.result.size - p.result.start for p in plans if p.result.status == "ingesting")
    if pool is not None:
        stream = pool.results({u.uid for u in units})
    else:
        stream = run_inline(units, settings.ingest_batch_rows, settings.max_line_bytes)
    done_bytes: dict[int, int] = {}
    lines = 0
    try:
        for msg in stream:
            kind, uid = msg[0], msg[1]
            unit = units[uid]
            plan = plans[unit.plan_index]
            if kind == "batch":
                if plan.result.status == "ingesting" and plan.node is not None:
                    # The store writes whole row groups as they fill and holds the rest (see
                    # DuckDBStore.append_events): batches of all sources share them.
                    store.append_events(run.id, plan.node.node, plan.source_id, msg[2], hold_partial=True)
                done_bytes[uid] = msg[3] - unit.start
            elif kind == "done":
                report: ParseReport = msg[2]
                plan.result.report.merge(report)
                plan.units_left -= 1
                lines += report.lines
                done_bytes[uid] = (unit.end or plan.result.size) - unit.start
            else:
                plan.result.status, plan.result.reason = "failed", msg[2]
            if progress is not None:
                progress(sum(done_bytes.values()), total, lines)
    finally:
        store.flush_events()  # also when interrupted: the sources completed so far are kept


def _close_sources(store: Store, run: RunRecord, plans: list[Plan], *, interrupted: bool) -> list[Plan]:
    """Mark each completely parsed source complete (replacing a continued source's cut last line), remove
    the failed ones — and, when interrupted, the unfinished ones — with their events. Returns the kept."""
    written: dict[int, int] = {}
    if interrupted:
        # An interrupt can land inside a write: keep a source only if the store holds all its events.
        ids = [p.source_id for p in plans if p.source_id]
        if ids:
            written = dict(store.query(
                "SELECT source, count(*) FROM events WHERE run_id = ? AND list_contains(?, source) GROUP BY source",
                [run.id, ids]))  # fmt: skip
    kept: list[Plan] = []
    for p in plans:
        if p.result.status not in ("ingesting", "failed") or not p.source_id:
            continue
        unfinished = interrupted and (p.units_left > 0 or written.get(p.source_id, 0) != p.result.report.events)
        if p.after is not None and not any(k is p.after for k in kept) and p.result.status == "ingesting":
            # It was read from where the earlier copy stops: without that copy its beginning is missing.
            unfinished = True
            if not interrupted:
                p.result.status = "failed"
                p.result.reason = f"continues {p.after.result.name}, which was not ingested; ingest both again"
        if p.result.status == "failed" or unfinished:
            store.discard_source(p.source_id)
            if p.result.status == "ingesting":
                p.result.status, p.result.reason = "interrupted", "not finished; ingest it again"
            continue
        p.result.status = "ingested"
        if p.result.report.events == 0 and p.result.report.lines == 0:
            p.result.report.warn("empty file")
        if p.continues is not None and p.continues.prefix_len is not None:
            store.trim_source(p.continues.id, p.continues.prefix_len)
        if p.after is not None:  # the earlier copy's cut last line is read whole from this one
            p.after.result.report.events -= store.trim_source(p.after.source_id, p.after.prefix_len or 0)
        r = p.result.report
        store.finish_source(
            p.source_id, lines=r.lines, events=r.events, skipped=dict(r.skipped), warnings=r.warnings + r.examples
        )
        if getattr(format_by_name(p.fmt_name), "unsupported", None):
            p.result.status = "unsupported"
        kept.append(p)
    return kept


def _refuse_nothing(run: RunRecord, files: list[FileResult]) -> None:
    """Raise when nothing at all could be ingested (duplicates count: they are in the run already)."""
    if not any(f.status in ("ingested", "duplicate") for f in files):
        reasons = "; ".join(f"{f.name}: {f.reason or 'no events'}" for f in files) or "no input files found"
        raise NothingIngestedError(f"nothing could be ingested ({reasons})", run=run.name)
    if sum(f.report.events for f in files if f.status == "ingested") == 0 and not any(
        f.status == "duplicate" for f in files
    ):
        raise NothingIngestedError(
            "nothing could be ingested: no file yielded any event (" + ", ".join(
                f"{f.name}: {dict(f.report.skipped) or f.reason or 'empty'}" for f in files) + ")",
            run=run.name,
        )  # fmt: skip
