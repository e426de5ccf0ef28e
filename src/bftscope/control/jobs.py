"""Background processing of simulations: expand uploads, ingest them into the simulation's run.

Embedded mode has one writer per database, so jobs run one at a time on a single worker thread (the
ingest itself fans parsing out to processes). Each job reports status, progress (bytes parsed / bytes
to parse), duration and error message on the simulation row. Reprocessing first deletes the run's
data, so it never duplicates anything. A file that cannot be read fails the simulation with its
reason, but what the other files gave is kept. A scaled-out deployment swaps :class:`JobRunner` for a
queue-backed one with the same methods (:func:`job_runner` picks it).
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, Protocol

from bftscope.config import Settings
from bftscope.control import simulations as sims
from bftscope.control.archives import ArchiveLimits, expand_upload
from bftscope.control.records import SimFile, now
from bftscope.errors import BftscopeError, ConflictError, NothingIngestedError
from bftscope.ingest.pipeline import ingest
from bftscope.store.base import Store

__all__ = ["INTERRUPTED", "JobRunner", "ThreadJobRunner", "archive_limits", "job_runner", "process_simulation",
           "recover_after_crash", "recover_interrupted"]

log = logging.getLogger("bftscope.jobs")


class JobRunner(Protocol):
    """What the API needs from whatever runs simulation jobs (a thread here; a queue when scaled out)."""

    completed: int  # jobs that finished with their simulation processed
    failed: int  # jobs that finished with it failed

    def uploading(self, sim_id: str) -> AbstractContextManager[None]:
        """Hold ``sim_id`` for one upload (409 while it is processed or receives another upload)."""
        ...

    def submit(self, sim_id: str, *, from_upload: bool = False) -> None:
        """Queue processing; ``from_upload`` is the upload holding the simulation handing it to its job."""
        ...

    def refuse_if_active(self, sim_id: str) -> None:
        """409 when the simulation is queued, processed or receiving files."""
        ...

    def running(self) -> int: ...

    def wait(self, timeout: float | None = None) -> None:
        """Block until every submitted job has finished."""
        ...

    def shutdown(self) -> None:
        """Finish the running and queued jobs, then stop."""
        ...


def job_runner(store: Store, settings: Settings, on_done: Callable[[str], None] | None = None) -> JobRunner:
    """The job runner for this deployment: embedded mode runs jobs on one thread beside its one writer."""
    return ThreadJobRunner(store, settings, on_done=on_done)


def archive_limits(settings: Settings) -> ArchiveLimits:
    s = settings
    return ArchiveLimits(max_total_bytes=s.max_archive_bytes, max_members=s.max_archive_members,
                         max_ratio=s.max_archive_ratio, max_member_bytes=s.max_archive_member_bytes)  # fmt: skip


def _expand(folder: Path, files: list[SimFile], limits: ArchiveLimits) -> tuple[list[Path], list[str]]:
    """What to ingest, and the reasons files could not be expanded.

    Only the files recorded for the simulation are read, never the folder's listing: whatever else is
    there (a file cut off by a crash, a file of an upload that failed before it was recorded) was never
    accepted and must not be ingested.
    """
    expanded = folder / "expanded"
    if expanded.exists():
        shutil.rmtree(expanded)
    expanded.mkdir(parents=True)
    paths: list[Path] = []
    errors: list[str] = []
    for f in files:
        try:
            paths += expand_upload(folder / "files" / f.stored_name, expanded, limits).paths
        except BftscopeError as exc:
            errors.append(f"{f.stored_name}: {exc.message}")
    return paths, errors


def process_simulation(
    store: Store, settings: Settings, sim_id: str, settle: Callable[[dict[str, Any]], None] | None = None
) -> None:
    """Run one simulation's processing to the end, then record the outcome on its row — through ``settle``
    when given, so that a runner can record it and stop counting the job as active in one step (a client
    reading ``processed`` may delete or reprocess at once)."""
    sim = sims.get_simulation(store, sim_id)
    t0 = time.perf_counter()
    sims.set_state(store, sim_id, status="processing", processing_status="processing", progress=0.0,
                   error_message=None)  # fmt: skip
    total = len(sim.files)
    folder = sims.simulation_dir(settings.data_dir, sim_id)
    try:
        runs = store.query("SELECT id FROM runs WHERE name = ?", [sim.run_name])
        if runs:
            store.delete_run(int(runs[0][0]))
        paths, errors = _expand(folder, sim.files, archive_limits(settings))

        def progress(done: int, todo: int, _lines: int) -> None:
            sims.set_state(store, sim_id, progress=round(done / todo, 4) if todo else 0.0)

        failed: list[str] = list(errors)
        if paths:
            result = ingest(store, sim.run_name, paths, settings, progress=progress)
            failed += [f"{f.name}: {f.reason or f.status}" for f in result.files if f.status == "failed"]
        elif not errors:
            raise NothingIngestedError("no files to process")
        ms = round((time.perf_counter() - t0) * 1000)
        ok = not failed
        outcome = dict(status="processed" if ok else "failed", processing_status="completed" if ok else "failed",
                       processed_files=total - len(errors), total_files=total, processing_ms=ms, progress=1.0,
                       processed_at=now(), error_message=None if ok else "; ".join(failed)[:4000])  # fmt: skip
    except BftscopeError as exc:
        outcome = dict(status="failed", processing_status="failed", processed_files=0, total_files=total,
                       processing_ms=round((time.perf_counter() - t0) * 1000), processed_at=now(),
                       error_message=exc.message)  # fmt: skip
    except Exception as exc:  # a bug must not leave the simulation "processing" forever
        log.exception("processing simulation %s failed", sim_id)
        outcome = dict(status="failed", processing_status="failed", processed_files=0, total_files=total,
                       processing_ms=round((time.perf_counter() - t0) * 1000), processed_at=now(),
                       error_message=f"internal error: {type(exc).__name__}")  # fmt: skip
    finally:
        # The expanded copy served this ingest only (reprocessing expands afresh): whatever the outcome,
        # it must not hold the disk, least of all after a bomb was refused half-way.
        shutil.rmtree(folder / "expanded", ignore_errors=True)
    if settle is not None:
        settle(outcome)
    else:
        sims.set_state(store, sim_id, **outcome)


INTERRUPTED = ("interrupted: the server stopped while this simulation was being processed, and the partial "
               "data was removed; reprocess it with POST /v1/simulations/{id}/process")  # fmt: skip


def recover_interrupted(store: Store, data_dir: Path) -> list[str]:
    """At start-up, close the jobs a crash or a stop cut off; returns their simulation ids.

    Such a simulation still says ``pending``/``processing``, and may hold part of an ingest. Its partial
    run data and expanded copy are removed and it is marked ``failed`` with a processing result whose
    message says it was interrupted and how to reprocess it, so a client never waits on it forever.
    """
    rows = store.query("SELECT id FROM simulations WHERE processing_status IN ('pending', 'processing')")
    ids = [str(r[0]) for r in rows]
    for sim_id in ids:
        sim = sims.get_simulation(store, sim_id)
        runs = store.query("SELECT id FROM runs WHERE name = ?", [sim.run_name])
        if runs:
            store.delete_run(int(runs[0][0]))
        shutil.rmtree(sims.simulation_dir(data_dir, sim_id) / "expanded", ignore_errors=True)
        sims.set_state(store, sim_id, status="failed", processing_status="failed", processed_files=0,
                       total_files=len(sim.files), processing_ms=0, progress=None, processed_at=now(),
                       error_message=INTERRUPTED.format(id=sim_id))  # fmt: skip
    return ids


_BUSY_PROCESSING = "Simulation is being processed; try again when it has finished"
_BUSY_UPLOADING = "Files are being uploaded to this simulation; try again when the upload has finished"


def recover_after_crash(store: Store, data_dir: Path) -> None:
    """What the control plane does before it takes requests: close cut-off jobs, clear upload debris."""
    interrupted = recover_interrupted(store, data_dir)
    if interrupted:
        log.warning("marked %d simulation(s) interrupted by the last stop: %s", len(interrupted),
                    ", ".join(interrupted))  # fmt: skip
    cleaned = sims.clean_upload_folders(store, data_dir)
    if cleaned:
        log.warning("removed upload debris of the last stop: %d orphan folder(s), %d unrecorded file(s), "
                    "%d expanded copy(ies)", len(cleaned.orphan_folders), len(cleaned.stray_files),
                    cleaned.expanded)  # fmt: skip


class ThreadJobRunner:
    """One job at a time on a worker thread; a simulation can be queued only once at a time.

    It also keeps which simulations are receiving an upload: an upload and a job on the same simulation
    exclude each other (the job would read half-written files, or the upload add files the running job
    never sees), whichever comes first; the loser gets a 409. An upload hands its simulation straight to
    the job it starts, so nothing can slip in between.
    """

    def __init__(self, store: Store, settings: Settings, on_done: Callable[[str], None] | None = None) -> None:
        self._on_done = on_done
        self._store = store
        self._settings = settings
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bftscope-job")
        self._active: dict[str, Future[None]] = {}
        self._uploading: dict[str, object] = {}  # simulation → the claim of the upload holding it
        self._lock = threading.Lock()
        self.completed = 0
        self.failed = 0

    @contextmanager
    def uploading(self, sim_id: str) -> Iterator[None]:
        """Hold ``sim_id`` for one upload; 409 while it is processed or receives another upload."""
        with self._lock:
            if sim_id in self._active:
                raise ConflictError("Simulation is being processed; upload more files when it has finished")
            if sim_id in self._uploading:
                raise ConflictError("Another upload to this simulation is in progress; try again when it has finished")
            claim = self._uploading[sim_id] = object()
        try:
            yield
        finally:
            with self._lock:
                if self._uploading.get(sim_id) is claim:  # not yet handed over (or re-claimed since)
                    del self._uploading[sim_id]

    def submit(self, sim_id: str, *, from_upload: bool = False) -> None:
        """Queue processing; ``from_upload`` is the upload holding the simulation handing it to its job."""
        with self._lock:
            if sim_id in self._active:
                raise ConflictError("Simulation is already being processed")
            if sim_id in self._uploading and not from_upload:
                raise ConflictError(_BUSY_UPLOADING)
            self._uploading.pop(sim_id, None)
            sims.set_state(self._store, sim_id, status="processing", processing_status="pending", progress=0.0)
            self._active[sim_id] = self._pool.submit(self._run, sim_id)

    def _run(self, sim_id: str) -> None:
        try:
            process_simulation(self._store, self._settings, sim_id, lambda outcome: self._settle(sim_id, outcome))
            state = sims.get_simulation(self._store, sim_id).processing_status
            if state == "completed":
                self.completed += 1
            else:
                self.failed += 1
        finally:
            with self._lock:
                self._active.pop(sim_id, None)
            if self._on_done is not None:
                self._on_done(sim_id)

    def _settle(self, sim_id: str, outcome: dict[str, Any]) -> None:
        """Record the job's outcome and stop counting it as active, as one step for every other caller."""
        with self._lock:
            sims.set_state(self._store, sim_id, **outcome)
            self._active.pop(sim_id, None)

    def refuse_if_active(self, sim_id: str) -> None:
        """Raise 409 when the simulation is queued, processed or receiving files (it cannot be deleted now)."""
        with self._lock:
            if sim_id in self._active:
                raise ConflictError(_BUSY_PROCESSING)
            if sim_id in self._uploading:
                raise ConflictError(_BUSY_UPLOADING)

    def running(self) -> int:
        with self._lock:
            return len(self._active)

    def wait(self, timeout: float | None = None) -> None:
        """Block until every submitted job has finished (tests, shutdown)."""
        with self._lock:
            futures = list(self._active.values())
        for f in futures:
            f.result(timeout=timeout)

    def shutdown(self) -> None:
        """Finish the running and queued jobs, then stop (graceful shutdown)."""
        self._pool.shutdown(wait=True)
