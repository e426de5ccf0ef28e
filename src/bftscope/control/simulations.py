"""Simulations: an uploaded testnet capture, its files on disk and the run its data is ingested into.

Files live under ``<data_dir>/uploads/<simulation id>/files``; only the files recorded in
``simulation_files`` belong to the simulation (anything else there is debris of a crash, removed at
start-up). Archives are expanded into ``…/expanded`` while the simulation is processed. Each
simulation owns one run (``sim-<id>``) in the store. Deleting a simulation removes its folder and its run's data.

Status follows the original (``shared/reference/cometbft-analyzer.md`` §1.4): ``logfile_required`` until
files arrive, then ``processing`` → ``processed`` or ``failed``; ``processing_status`` is ``pending`` →
``processing`` → ``completed`` or ``failed``.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from bftscope.control.records import SimFile, Simulation, check_text, new_id, now, set_text
from bftscope.control.uploads import SavedFile
from bftscope.errors import ConflictError, NotFoundError
from bftscope.store.base import Store

__all__ = [
    "Cleanup",
    "add_files",
    "clean_upload_folders",
    "create_simulation",
    "delete_simulation",
    "get_simulation",
    "list_simulations",
    "ownership",
    "run_id_of",
    "set_state",
    "simulation_dir",
    "simulation_ids",
    "status_counts",
    "update_simulation",
]

_COLS = ("id, project_id, user_id, name, description, status, processing_status, processed_files, total_files,"
         " processing_ms, progress, error_message, processed_at, created_at, updated_at")  # fmt: skip
def simulation_dir(data_dir: Path, sim_id: str) -> Path:
    return data_dir / "uploads" / sim_id


def create_simulation(store: Store, project_id: str, user_id: str, name: str, description: str = "",
                      sim_id: str | None = None) -> Simulation:  # fmt: skip
    check_text(name, description)
    t = now()
    sid = sim_id or new_id()
    store.execute(
        f"INSERT INTO simulations ({_COLS}) VALUES (?, ?, ?, ?, ?, 'logfile_required', NULL, NULL, NULL, NULL, NULL,"
        " NULL, NULL, ?, ?)",
        [sid, project_id, user_id, name, description, t, t],
    )
    return get_simulation(store, sid)


def _files(store: Store, sim_ids: list[str]) -> dict[str, list[SimFile]]:
    out: dict[str, list[SimFile]] = {s: [] for s in sim_ids}
    if not sim_ids:
        return out
    rows = store.query(
        "SELECT simulation_id, stored_name, original_filename, size, sha256, uploaded_at FROM simulation_files"
        " WHERE simulation_id IN (SELECT unnest(?)) ORDER BY uploaded_at, stored_name",
        [sim_ids],
    )
    for r in rows:
        out[r[0]].append(SimFile(*r[1:]))
    return out


def _with_files(store: Store, rows: list[tuple[Any, ...]]) -> list[Simulation]:
    sims = [Simulation(*r) for r in rows]
    files = _files(store, [s.id for s in sims])
    for s in sims:
        s.files = files[s.id]
    return sims


def get_simulation(store: Store, sim_id: str) -> Simulation:
    sims = _with_files(store, store.query(f"SELECT {_COLS} FROM simulations WHERE id = ?", [sim_id]))
    if not sims:
        raise NotFoundError("Simulation not found")
    return sims[0]


def list_simulations(store: Store, *, user_id: str | None = None, project_id: str | None = None) -> list[Simulation]:
    column, value = ("user_id", user_id) if user_id is not None else ("project_id", project_id)
    return _with_files(store, store.query(
        f"SELECT {_COLS} FROM simulations WHERE {column} = ? ORDER BY created_at, id", [value]))  # fmt: skip


def ownership(store: Store, sim_id: str) -> tuple[str, str | None, str] | None:
    """``(user id, processing status, status)`` of a simulation, None when there is none: the hot path of
    every metric request reads these three columns only."""
    rows = store.query("SELECT user_id, processing_status, status FROM simulations WHERE id = ?", [sim_id])
    return (rows[0][0], rows[0][1], rows[0][2]) if rows else None


def run_id_of(store: Store, sim_id: str) -> int | None:
    """The id of the run a simulation's processing filled, None before its first processing."""
    runs = store.query("SELECT id FROM runs WHERE name = ?", [f"sim-{sim_id}"])
    return int(runs[0][0]) if runs else None


def simulation_ids(store: Store, column: Literal["id", "project_id", "user_id"], value: str) -> list[str]:
    """Ids of the simulations whose ``column`` is ``value``."""
    assert column in ("id", "project_id", "user_id")  # a column name cannot be a bound parameter
    return [str(r[0]) for r in store.query(f"SELECT id FROM simulations WHERE {column} = ?", [value])]


def status_counts(store: Store) -> list[tuple[str, int]]:
    """How many simulations are in each status."""
    return [(str(r[0]), int(r[1])) for r in store.query("SELECT status, count(*) FROM simulations GROUP BY status")]


def update_simulation(store: Store, sim_id: str, name: str | None, description: str | None) -> Simulation:
    get_simulation(store, sim_id)
    set_text(store, "simulations", sim_id, name, description)
    return get_simulation(store, sim_id)


def add_files(store: Store, sim_id: str, saved: list[SavedFile]) -> None:
    t = now()
    for f in saved:
        store.execute("INSERT INTO simulation_files VALUES (?, ?, ?, ?, ?, ?)",
                      [sim_id, f.stored_name, f.original_filename, f.size, f.sha256, t])  # fmt: skip


def set_state(store: Store, sim_id: str, **fields: Any) -> None:
    """Update status columns (``status``, ``processing_status``, ``progress``, …) and ``updated_at``."""
    allowed = {"status", "processing_status", "processed_files", "total_files", "processing_ms", "progress",
               "error_message", "processed_at"}  # fmt: skip
    if not fields or set(fields) - allowed:
        raise ValueError(f"unknown simulation fields: {set(fields) - allowed}")
    sets = ", ".join(f"{k} = ?" for k in fields)
    store.execute(f"UPDATE simulations SET {sets}, updated_at = ? WHERE id = ?", [*fields.values(), now(), sim_id])


@dataclass
class Cleanup:
    """What :func:`clean_upload_folders` removed, to be logged."""

    orphan_folders: list[str] = field(default_factory=list)  # no simulation row: a create cut off by a crash
    stray_files: list[str] = field(default_factory=list)  # "<sim>/<name>": partial or never recorded
    expanded: int = 0  # expanded copies left by a job cut off by a crash

    def __bool__(self) -> bool:
        return bool(self.orphan_folders or self.stray_files or self.expanded)


def clean_upload_folders(store: Store, data_dir: Path) -> Cleanup:
    """Remove, at start-up, what a crash left in the upload folders; only recorded files stay.

    Run before the server takes requests (no upload or job can be under way): a folder of no simulation
    (its create was cut off before the row was written), a file in ``files/`` that no row lists (a part
    still arriving under its temporary name, or a finished part of a request that never completed), and
    an ``expanded/`` copy. Processing reads only recorded files anyway; this gives their disk space back.
    """
    out = Cleanup()
    root = data_dir / "uploads"
    if not root.is_dir():
        return out
    listed: dict[str, set[str]] = {str(r[0]): set() for r in store.query("SELECT id FROM simulations")}
    for sim_id, name in store.query("SELECT simulation_id, stored_name FROM simulation_files"):
        listed.setdefault(str(sim_id), set()).add(str(name))
    for folder in sorted(root.iterdir()):
        if folder.name not in listed or folder.is_symlink() or not folder.is_dir():
            out.orphan_folders.append(folder.name)
            _remove(folder)
            continue
        if (folder / "expanded").exists():
            out.expanded += 1
            _remove(folder / "expanded")
        files = folder / "files"
        for f in sorted(files.iterdir()) if files.is_dir() else []:
            if f.name not in listed[folder.name] or f.is_symlink() or not f.is_file():
                out.stray_files.append(f"{folder.name}/{f.name}")
                _remove(f)
    return out


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def refuse_simulation_run(store: Store, run: str, action: str) -> None:
    """Raise :class:`ConflictError` when ``run`` is an API simulation's run: its row, files and status
    live with its data, so only the API may change it (a command line that deleted or added events
    behind it would leave the simulation saying ``processed`` over data it does not hold)."""
    if not run.startswith("sim-"):
        return
    rows = store.query("SELECT id, name FROM simulations WHERE id = ?", [run.removeprefix("sim-")])
    if rows:
        sid, name = rows[0]
        raise ConflictError(
            f"run {run} belongs to the API simulation {name!r}; {action} it through the API instead:"
            f" DELETE /v1/simulations/{sid} removes it with its files, POST /v1/simulations/{sid}/upload"
            f" adds files, POST /v1/simulations/{sid}/process reprocesses them"
        )


def delete_simulation(store: Store, data_dir: Path, sim_id: str) -> None:
    """Remove the simulation's files, its run's data and its rows."""
    sim = get_simulation(store, sim_id)
    folder = simulation_dir(data_dir, sim_id)
    if folder.is_dir() and not folder.is_symlink():
        shutil.rmtree(folder)
    runs = store.query("SELECT id FROM runs WHERE name = ?", [sim.run_name])
    if runs:
        store.delete_run(int(runs[0][0]))
    store.execute("DELETE FROM simulation_files WHERE simulation_id = ?", [sim_id])
    store.execute("DELETE FROM simulations WHERE id = ?", [sim_id])
