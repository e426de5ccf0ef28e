"""Projects: a user's folders of simulations. Deleting one deletes its simulations (with files and data)."""

from __future__ import annotations

from collections.abc import Callable

from bftscope.control.records import Project, check_text, new_id, now, set_text
from bftscope.errors import NotFoundError
from bftscope.store.base import Store

__all__ = ["create_project", "delete_project", "get_project", "list_projects", "update_project"]

_COLS = "id, user_id, name, description, created_at, updated_at"
def create_project(store: Store, user_id: str, name: str, description: str = "") -> Project:
    check_text(name, description)
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
    get_project(store, project_id)
    set_text(store, "projects", project_id, name, description)
    return get_project(store, project_id)


def delete_project(store: Store, project_id: str, remove_simulation: Callable[[str], None]) -> None:
    get_project(store, project_id)
    for (sim_id,) in store.query("SELECT id FROM simulations WHERE project_id = ?", [project_id]):
        remove_simulation(sim_id)
    store.execute("DELETE FROM projects WHERE id = ?", [project_id])
