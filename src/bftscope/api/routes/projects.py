"""``/v1/users/{userId}/projects`` and ``/v1/projects/{projectId}``: a user's projects."""

from __future__ import annotations

from fastapi import APIRouter

from bftscope.api import convert, schemas
from bftscope.api.deps import Caller, Ctx, HexId, check_id, project_for, require_user_access
from bftscope.api.errors import errors
from bftscope.api.routes.users import ensure_user
from bftscope.control import projects

router = APIRouter(prefix="/v1", tags=["projects"])


@router.post("/users/{userId}/projects", status_code=201, response_model=schemas.Project,
             responses=errors(400, 401, 403, 404))  # fmt: skip
def create_project(userId: HexId, body: schemas.ProjectCreate, c: Ctx, who: Caller) -> schemas.Project:
    require_user_access(who, check_id(userId, "user"))
    ensure_user(c, userId)
    return convert.project(projects.create_project(c.store, userId, body.name, body.description))


@router.get("/users/{userId}/projects", response_model=list[schemas.Project], responses=errors(400, 401, 403))
def list_projects(userId: HexId, c: Ctx, who: Caller) -> list[schemas.Project]:
    require_user_access(who, check_id(userId, "user"))
    return [convert.project(p) for p in projects.list_projects(c.store, userId)]


@router.get("/projects/{projectId}", response_model=schemas.Project, responses=errors(400, 401, 404))
def get_project(projectId: HexId, c: Ctx, who: Caller) -> schemas.Project:
    return convert.project(project_for(c, who, projectId))


@router.put("/projects/{projectId}", response_model=schemas.Project, responses=errors(400, 401, 404))
def update_project(projectId: HexId, body: schemas.ProjectUpdate, c: Ctx, who: Caller) -> schemas.Project:
    """Only the fields present are changed; ``updatedAt`` always is."""
    project_for(c, who, projectId)
    return convert.project(projects.update_project(c.store, projectId, body.name, body.description))


@router.delete("/projects/{projectId}", response_model=schemas.Message, responses=errors(400, 401, 404, 409))
def delete_project(projectId: HexId, c: Ctx, who: Caller) -> schemas.Message:
    """Deletes the project's simulations (their files and data) too."""
    project_for(c, who, projectId)
    c.refuse_if_processing("project_id", projectId)
    projects.delete_project(c.store, projectId, c.remove_simulation)
    return schemas.Message(message="Project deleted successfully")
