"""Projects: a user's folders of simulations. Deleting one deletes its simulations (with files and data)."""

from __future__ import annotations

from collections.abc import Callable

from bftscope.control.records import Project, new_id, now
from bftscope.errors import InputError, NotFoundError
from bftscope.store.base import Store

__all__ = ["create_project", "delete_project", "get_project", "list_projects", "update_project"]

_COLS = "id, user_id, name, description, created_at, updated_at"
MAX_NAME = 200
MAX_DESCRIPTION = 10_000


def _check(name: str | None, description: str | None) -> None:
    if name is not None and not (0 < len(name.strip()) <= MAX_NAME):
        raise InputError(f"name must have 1 to {MAX_NAME} characters")
    if description is not None and len(description) > MAX_DESCRIPTION:
        raise InputError(f"description must have at most {MAX_DESCRIPTION} characters")


def create_project(store: Store, user_id: str, name: str, description: str = "") -> Project:
    _check(name, description)
    t = now()
    p = Project(new_id(), user_id, name, description, t, t)
    store.execute("INSERT INTO projects VALUES (?, ?, ?, ?, ?, ?)", [p.id, user_id, name, description, t, t])
    return p


def get_project(store: Store, project_id: str) -> Project:
    rows = store.query(f"SELECT {_COLS} FROM projects WHERE id = ?", [project_id])
    if not rows:
        raise NotFoundError("Project not found")
    return Project(*rows[0])


def list_projects(store: Store, user_id: str) -> list[Project]:
    return [Project(*r) for r in store.query(f"SELECT {_COLS} FROM projects WHERE user_id = ? ORDER BY created_at, id",
                                             [user_id])]  # fmt: skip


def update_project(store: Store, project_id: str, name: str | None, description: str | None) -> Project:
    _check(name, description)
    get_project(store, project_id)
    store.execute(
        "UPDATE projects SET name = coalesce(?, name), description = coalesce(?, description), updated_at = ?"
        " WHERE id = ?",
        [name, description, now(), project_id],
    )
    return get_project(store, project_id)


def delete_project(store: Store, project_id: str, remove_simulation: Callable[[str], None]) -> None:
    get_project(store, project_id)
    for (sim_id,) in store.query("SELECT id FROM simulations WHERE project_id = ?", [project_id]):
        remove_simulation(sim_id)
    store.execute("DELETE FROM projects WHERE id = ?", [project_id])
