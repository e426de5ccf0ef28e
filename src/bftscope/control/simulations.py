"""Simulations: an uploaded testnet capture, its files on disk and the run its data is ingested into.

Files live under ``<data_dir>/uploads/<simulation id>/files``; archives are expanded into
``…/expanded`` when the simulation is processed. Each simulation owns one run (``sim-<id>``) in the
store. Deleting a simulation removes its folder and its run's data.

Status follows the original (``shared/reference/cometbft-analyzer.md`` §1.4): ``logfile_required`` until
files arrive, then ``processing`` → ``processed`` or ``failed``; ``processing_status`` is ``pending`` →
``processing`` → ``completed`` or ``failed``.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from bftscope.control.records import SimFile, Simulation, check_text, new_id, now, set_text
from bftscope.control.uploads import SavedFile
from bftscope.errors import NotFoundError
from bftscope.store.base import Store

__all__ = [
    "add_files",
    "create_simulation",
    "delete_simulation",
    "get_simulation",
    "list_simulations",
    "set_state",
    "simulation_dir",
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
