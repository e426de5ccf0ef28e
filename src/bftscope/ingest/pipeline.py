"""The ingest pipeline: paths → planned sources → parallel parsing → one writer → a result.

1. **Plan** (this process): discover inputs, detect formats, hash contents (a source already
   ingested into the run is skipped: content identity), learn each node's identity and resolve
   it to a node of the run, cut splittable files into byte ranges (*units*).
2. **Parse**: units run in worker processes (or inline for small inputs); each streams Arrow
   batches back through a bounded queue, so memory stays flat whatever the input size.
3. **Write**: this process appends batches to the store as they arrive (the store's single
   writer) and closes each source with its merged parse report. A source that fails is removed
   with its events and reported; the others are kept.
4. **Derive**: nodes' p2p ids that no file stated are inferred (``cometbft/peerids.py``), then the run's
   derived tables (vote arrivals, deliveries) are rebuilt in SQL.
"""

from __future__ import annotations

import mmap
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import xxhash

from bftscope.cometbft import peerids, rollups
from bftscope.cometbft.derive import rebuild
from bftscope.cometbft.formats import FORMATS, format_by_name
from bftscope.cometbft.home import genesis_validator_names, home_identity
from bftscope.cometbft.identity import Identity
from bftscope.config import Settings
from bftscope.errors import NothingIngestedError
from bftscope.ingest.discover import InputFile, detect_format, discover, open_input
from bftscope.ingest.report import ParseReport
from bftscope.ingest.worker import Unit, WorkerPool, run_inline
from bftscope.store.base import NodeRecord, RunRecord, Store

__all__ = ["PHASES", "FileResult", "IngestResult", "Phase", "Progress", "ingest"]

IDENTITY_SCAN_BYTES = 4 * 1024 * 1024
INLINE_BELOW_BYTES = 32 * 1024 * 1024

Progress = Callable[[int, int, int], None]  # (bytes done, bytes total, lines done)
Phase = Callable[[str], None]  # called with the label of each phase after parsing, as it starts
# The phases of an ingest: key in IngestResult.phases → label shown to people.
PHASES = {"parse_store": "parse and store", "derive": "derived tables", "rollups": "metric rollups"}


@dataclass
class FileResult:
    name: str
    format: str | None
    node: str | None
    status: str  # ingested | duplicate | unrecognized | unsupported (recognised, not decoded) | failed
    reason: str | None = None
    report: ParseReport = field(default_factory=ParseReport)
    size: int = 0


@dataclass
class IngestResult:
    run: str
    run_id: int
    files: list[FileResult]
    seconds: float
    bytes_total: int
    derived: dict[str, int] = field(default_factory=dict)  # row counts of the rebuilt derived tables
    # Per node: its p2p id, where it came from and any disagreement between sources (cometbft/peerids.py).
    identities: list[dict[str, Any]] = field(default_factory=list)
    # Seconds per phase (keys of PHASES): "parse_store" (planning, parsing, normalizing, storing),
    # "derive" (inferred node ids, derived tables), "rollups" (whole-run metric answers).
    phases: dict[str, float] = field(default_factory=dict)

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


@dataclass
class _Plan:
    file: InputFile
    result: FileResult
    fmt_name: str = ""
    content_hash: str = ""
    identity: Identity = field(default_factory=Identity)
    node: NodeRecord | None = None
    source_id: int = 0


def _hash_file(path: Path) -> str:
    """xxh3-128 of the file's bytes, hashed in place through a memory map (no copy)."""
    with path.open("rb") as fh:
        if path.stat().st_size == 0:
            return xxhash.xxh3_128(b"").hexdigest()
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            return xxhash.xxh3_128(mm).hexdigest()


def _label(ident: Identity, names: dict[str, str], f: InputFile) -> str:
    if ident.validator and ident.validator in names:
        return names[ident.validator]
    if ident.moniker:
        return ident.moniker
    if f.home is not None:
        return f.home.name
    if ident.p2p_id:
        return ident.p2p_id[:12]
    if ident.validator:
        return ident.validator[:12]
    return f.path.name.split(".")[0]


def _plan(
    store: Store, run_id: int, files: list[InputFile], settings: Settings, units: list[Unit], pool: WorkerPool | None
) -> list[_Plan]:
    """Check every file; a new source's parse units are queued to the pool as soon as it is checked,
    so parsing starts while later files are still being hashed."""
    plans = [_Plan(f, FileResult(f.name, None, None, "pending", size=f.path.stat().st_size)) for f in files]
    formats = list(FORMATS)
    names: dict[str, str] = {}
    for home in {f.home for f in files if f.home is not None}:
        names.update(genesis_validator_names(home))
    for i, p in enumerate(plans):
        fmt, reason = detect_format(p.file, formats)
        if fmt is None:
            p.result.status, p.result.reason = "unrecognized", reason
            continue
        p.fmt_name = p.result.format = fmt.name
        p.content_hash = _hash_file(p.file.path)
        try:
            with open_input(p.file) as (stream, _):
                p.identity = fmt.identity(stream, IDENTITY_SCAN_BYTES)
        except (OSError, EOFError, ValueError) as exc:
            p.result.report.warn(f"identity scan stopped early: {exc}")
        existing = store.find_source(run_id, p.content_hash)
        if existing is not None and existing.status == "complete":
            p.result.status, p.result.reason = "duplicate", "already ingested into this run (same content)"
            continue
        p.result.status = "ingesting"
        new_units = _units_of(len(units), i, p, settings)
        units.extend(new_units)
        if pool is not None:
            pool.submit(new_units)
    # Files of one node home share an identity; merge what each one revealed.
    by_home: dict[Path, Identity] = {}
    for p in plans:
        if p.file.home is not None and p.fmt_name:
            ident = by_home.setdefault(p.file.home, home_identity(p.file.home))
            for c in ident.conflicts(p.identity):
                p.result.report.warn(f"identity conflict with its node home ({c}); kept the first")
            ident.merge(p.identity)
    _explain_unsupported(plans)
    for p in plans:
        if not p.fmt_name:
            continue
        ident = by_home.get(p.file.home, p.identity) if p.file.home is not None else p.identity
        label = _label(ident, names, p.file)
        if not ident.known:
            p.result.report.warn(
                f"no node identity found in {p.file.name}; attributed to node '{label}' by its file/folder name"
            )
        p.node = store.resolve_node(
            run_id, p2p_id=ident.p2p_id, validator=ident.validator, moniker=ident.moniker, label=label
        )
        p.result.node = p.node.label
        peerids.record_home(store, run_id, p.node.node, p.file.home, ident)
        if p.result.status == "ingesting":
            p.source_id = store.begin_source(
                run_id, p.node.node, p.file.name, p.fmt_name, p.content_hash, p.result.size
            ).id
    return plans


def _explain_unsupported(plans: list[_Plan]) -> None:
    """A file of a recognised but unsupported format (a Tendermint ≤ 0.33 WAL) is ingested for the record
    (its source says why it gave nothing); its reason says whether the node's other files were read."""
    for p in plans:
        why = getattr(format_by_name(p.fmt_name), "unsupported", None) if p.fmt_name else None
        if why is None:
            continue
        read = any(q is not p and q.fmt_name and q.file.home is not None and q.file.home == p.file.home
                   and not getattr(format_by_name(q.fmt_name), "unsupported", None) for q in plans)  # fmt: skip
        note = "logs of this node were read" if read else "no other file of this node was given"
        p.result.reason = f"{why} ({note})"
        p.result.report.warn(p.result.reason)


def _units_of(first_uid: int, plan_index: int, p: _Plan, settings: Settings) -> list[Unit]:
    """Parse units of one file: byte ranges for large line files, the whole file otherwise."""
    fmt = format_by_name(p.fmt_name)
    size = p.result.size
    if fmt.splittable and not p.file.gz and size > settings.split_bytes:
        bounds = [(start, min(start + settings.split_bytes, size)) for start in range(0, size, settings.split_bytes)]
    else:
        bounds = [(0, size)]
    units = [
        Unit(first_uid + k, plan_index, p.file, p.fmt_name, start, None if end >= size else end)
        for k, (start, end) in enumerate(bounds)
    ]
    return units


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
    files = discover(paths)
    run = store.get_or_create_run(run_name, "cometbft")
    n_workers = workers if workers is not None else (settings.ingest_workers or os.cpu_count() or 1)
    pool = None
    if n_workers > 1 and sum(f.path.stat().st_size for f in files) >= INLINE_BELOW_BYTES:
        # Start the parsers now: their start-up overlaps with hashing and identity scans below.
        pool = WorkerPool(min(n_workers, len(files) + 1), settings.ingest_batch_rows, settings.max_line_bytes)
    # Memory: while parsers run, DuckDB's buffer pool is kept small so that parsers and writer together
    # stay within the ingest's budget whatever the input size; deriving gets the room the parsers left.
    try:
        with store.memory_limit(settings.ingest_parse_memory_limit):
            plans, results = _parse_and_write(store, run, files, settings, pool, progress)
    finally:
        if pool is not None:
            pool.close()  # before deriving: idle parsers would only hold memory
    with store.memory_limit(settings.ingest_derive_memory_limit):
        return _finish(store, run, plans, results, t0, on_phase)


def _parse_and_write(
    store: Store,
    run: RunRecord,
    files: list[InputFile],
    settings: Settings,
    pool: WorkerPool | None,
    progress: Progress | None,
) -> tuple[list[_Plan], set[int]]:
    """Plan, parse and write every source; returns the plans and the indexes of failed ones."""
    units: list[Unit] = []
    plans = _plan(store, run.id, files, settings, units, pool)
    total = sum(p.result.size for p in plans if p.result.status == "ingesting")
    if pool is not None:
        stream = pool.results({u.uid for u in units})
    else:
        stream = run_inline(units, settings.ingest_batch_rows, settings.max_line_bytes)
    done_bytes: dict[int, int] = {}
    lines = 0
    failed: set[int] = set()
    try:
        for msg in stream:
            kind, uid = msg[0], msg[1]
            unit = units[uid]
            plan = plans[unit.plan_index]
            if kind == "batch":
                if unit.plan_index not in failed and plan.node is not None:
                    # The store writes whole row groups as they fill and holds the rest (see
                    # DuckDBStore.append_events): batches of all sources share them.
                    store.append_events(run.id, plan.node.node, plan.source_id, msg[2], hold_partial=True)
                done_bytes[uid] = msg[3] - unit.start
            elif kind == "done":
                report: ParseReport = msg[2]
                plan.result.report.merge(report)
                lines += report.lines
                done_bytes[uid] = (unit.end or plan.result.size) - unit.start
            else:
                failed.add(unit.plan_index)
                plan.result.status, plan.result.reason = "failed", msg[2]
            if progress is not None:
                progress(sum(done_bytes.values()), total, lines)
    finally:
        store.flush_events()  # also when interrupted: what was parsed stays, as it would unheld
    return plans, failed


def _finish(
    store: Store, run: RunRecord, plans: list[_Plan], failed: set[int], t0: float, on_phase: Phase | None
) -> IngestResult:
    """Close each source with its report, rebuild the run's derived tables, build the result."""
    for i, p in enumerate(plans):
        if p.result.status == "ingesting" and i not in failed:
            p.result.status = "ingested"
            if p.result.report.events == 0 and p.result.report.lines == 0:
                p.result.report.warn("empty file")
            r = p.result.report
            store.finish_source(
                p.source_id, lines=r.lines, events=r.events, skipped=dict(r.skipped), warnings=r.warnings + r.examples
            )
            if getattr(format_by_name(p.fmt_name), "unsupported", None):
                p.result.status = "unsupported"
        elif i in failed:
            store.discard_source(p.source_id)
    derived: dict[str, int] = {}
    phases = {"parse_store": time.perf_counter() - t0}

    def phase(key: str, work: Callable[[], Any]) -> Any:
        if on_phase is not None:
            on_phase(PHASES[key])
        t = time.perf_counter()
        value = work()
        phases[key] = time.perf_counter() - t
        return value

    identities: list[dict[str, Any]] = []
    if any(p.result.status == "ingested" for p in plans):
        # Inferred p2p ids are derived data too: deliveries need them to tie a receipt to its sender.
        identities, derived = phase("derive", lambda: (peerids.resolve(store, run.id), rebuild(store, run.id)))
        derived["rollups"] = phase("rollups", lambda: rollups.refresh(store, run.id))
    total = sum(p.result.size for p in plans if p.result.status in ("ingested", "failed"))
    result = IngestResult(
        run.name, run.id, [p.result for p in plans], time.perf_counter() - t0, total, derived, identities, phases
    )
    if not any(f.status in ("ingested", "duplicate") for f in result.files):
        reasons = "; ".join(f"{f.name}: {f.reason or 'no events'}" for f in result.files) or "no input files found"
        raise NothingIngestedError(f"nothing could be ingested ({reasons})", run=run.name)
    if result.events == 0 and not any(f.status == "duplicate" for f in result.files):
        raise NothingIngestedError(
            "nothing could be ingested: no file yielded any event (" + ", ".join(
                f"{f.name}: {dict(f.report.skipped) or f.reason or 'empty'}" for f in result.files) + ")",
            run=run.name,
        )  # fmt: skip
    return result
