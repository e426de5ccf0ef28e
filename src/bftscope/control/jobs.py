"""Background processing of simulations: expand uploads, ingest them into the simulation's run.

Embedded mode has one writer per database, so jobs run one at a time on a single worker thread (the
ingest itself fans parsing out to processes). Each job reports status, progress (bytes parsed / bytes
to parse), duration and error message on the simulation row. Reprocessing first deletes the run's
data, so it never duplicates anything. A file that cannot be read fails the simulation with its
reason, but what the other files gave is kept. A scaled-out deployment swaps :class:`JobRunner` for a
queue-backed one with the same two methods.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Protocol

from bftscope.config import Settings
from bftscope.control import simulations as sims
from bftscope.control.archives import ArchiveLimits, expand_upload
from bftscope.control.records import now
from bftscope.errors import BftscopeError, ConflictError, NothingIngestedError
from bftscope.ingest.pipeline import ingest
from bftscope.store.base import Store

__all__ = ["JobRunner", "ThreadJobRunner", "process_simulation"]

log = logging.getLogger("bftscope.jobs")


class JobRunner(Protocol):
    def submit(self, sim_id: str) -> None: ...

    def running(self) -> int: ...


def _expand(sim_id: str, folder: Path, limits: ArchiveLimits) -> tuple[list[Path], list[str]]:
    """What to ingest, and the reasons files could not be expanded."""
    expanded = folder / "expanded"
    if expanded.exists():
        shutil.rmtree(expanded)
    expanded.mkdir(parents=True)
    paths: list[Path] = []
    errors: list[str] = []
    for f in sorted((folder / "files").iterdir()) if (folder / "files").is_dir() else []:
        try:
            paths += expand_upload(f, expanded, limits).paths
        except BftscopeError as exc:
            errors.append(f"{f.name}: {exc.message}")
    return paths, errors


def process_simulation(store: Store, settings: Settings, sim_id: str) -> None:
    """Run one simulation's processing to the end, recording the outcome on its row."""
    sim = sims.get_simulation(store, sim_id)
    t0 = time.perf_counter()
    sims.set_state(store, sim_id, status="processing", processing_status="processing", progress=0.0,
                   error_message=None)  # fmt: skip
    total = len(sim.files)
    try:
        runs = store.query("SELECT id FROM runs WHERE name = ?", [sim.run_name])
        if runs:
            store.delete_run(int(runs[0][0]))
        paths, errors = _expand(sim_id, sims.simulation_dir(settings.data_dir, sim_id), ArchiveLimits())

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
        sims.set_state(store, sim_id, status="processed" if ok else "failed",
                       processing_status="completed" if ok else "failed", processed_files=total - len(errors),
                       total_files=total, processing_ms=ms, progress=1.0, processed_at=now(),
                       error_message=None if ok else "; ".join(failed)[:4000])  # fmt: skip
    except BftscopeError as exc:
        sims.set_state(store, sim_id, status="failed", processing_status="failed", processed_files=0,
                       total_files=total, processing_ms=round((time.perf_counter() - t0) * 1000),
                       processed_at=now(), error_message=exc.message)  # fmt: skip
    except Exception as exc:  # a bug must not leave the simulation "processing" forever
        log.exception("processing simulation %s failed", sim_id)
        sims.set_state(store, sim_id, status="failed", processing_status="failed", processed_files=0,
                       total_files=total, processing_ms=round((time.perf_counter() - t0) * 1000),
                       processed_at=now(), error_message=f"internal error: {type(exc).__name__}")  # fmt: skip


class ThreadJobRunner:
    """One job at a time on a worker thread; a simulation can be queued only once at a time."""

    def __init__(self, store: Store, settings: Settings, on_done: Callable[[str], None] | None = None) -> None:
        self._on_done = on_done
        self._store = store
        self._settings = settings
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bftscope-job")
        self._active: dict[str, Future[None]] = {}
        self._lock = threading.Lock()
        self.completed = 0
        self.failed = 0

    def submit(self, sim_id: str) -> None:
        with self._lock:
            if sim_id in self._active:
                raise ConflictError("Simulation is already being processed")
            sims.set_state(self._store, sim_id, status="processing", processing_status="pending", progress=0.0)
            self._active[sim_id] = self._pool.submit(self._run, sim_id)

    def _run(self, sim_id: str) -> None:
        try:
            process_simulation(self._store, self._settings, sim_id)
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

    def refuse_if_active(self, sim_id: str) -> None:
        """Raise 409 when the simulation is queued or being processed (it cannot be deleted now)."""
        with self._lock:
            if sim_id in self._active:
                raise ConflictError("Simulation is being processed; try again when it has finished")

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
