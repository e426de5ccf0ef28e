"""Simulations: create (JSON, or multipart with ``logfiles``), read, update, delete, upload, process.

Uploads stream to disk as they arrive (:mod:`bftscope.control.uploads`) with per-file and per-request
limits (413), safe names and no overwrites. Processing runs in the background
(:mod:`bftscope.control.jobs`); it starts by itself when files arrive — the original started it on
creation with files but not after an upload, which left the frontend's simulations pending forever —
and ``POST …/process`` reprocesses (without duplicating anything).
"""

from __future__ import annotations

import shutil
from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from bftscope.api import convert, schemas
from bftscope.api.context import ApiContext
from bftscope.api.deps import Caller, Ctx, HexId, check_id, project_for, require_user_access, sim_for
from bftscope.api.errors import errors
from bftscope.control import simulations as sims
from bftscope.control.records import new_id
from bftscope.control.uploads import UploadLimits, UploadResult, receive_multipart
from bftscope.errors import InputError, UnsupportedMediaTypeError

router = APIRouter(prefix="/v1", tags=["simulations"])

_FILES: dict[str, Any] = {"type": "array", "items": {"type": "string", "format": "binary"}}
_MULTIPART: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {"name": {"type": "string", "minLength": 1, "maxLength": 200, "pattern": "\\S"},
                   "description": {"type": "string", "maxLength": 10000}, "logfiles": _FILES},
}
_CREATE_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/SimulationCreate"}},
            "multipart/form-data": {"schema": {**_MULTIPART, "required": ["name"]}},
        },
    }
}
_UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {"type": "object", "required": ["logfiles"], "additionalProperties": False,
                           "properties": {"logfiles": {**_FILES, "minItems": 1}}}
            }
        },
    }
}


def _limits(c: ApiContext) -> UploadLimits:
    return UploadLimits(max_file_bytes=c.settings.max_upload_file_bytes,
                        max_request_bytes=c.settings.max_upload_request_bytes)  # fmt: skip


async def _receive(c: ApiContext, request: Request, sim_id: str) -> UploadResult:
    dest = sims.simulation_dir(c.settings.data_dir, sim_id) / "files"
    dest.mkdir(parents=True, exist_ok=True)
    return await receive_multipart(request.stream(), request.headers.get("content-type", ""), dest, _limits(c))


@router.post("/users/{userId}/projects/{projectId}/simulations", status_code=201, response_model=schemas.Simulation,
             responses=errors(400, 401, 403, 404, 413, 415), openapi_extra=_CREATE_BODY)  # fmt: skip
async def create_simulation(
    userId: HexId, projectId: HexId, request: Request, c: Ctx, who: Caller
) -> schemas.Simulation:
    """JSON ``{name, description}`` creates an empty simulation (``logfile_required``); multipart fields
    ``name``, ``description`` and files ``logfiles`` create it with its files and start processing."""
    require_user_access(who, check_id(userId, "user"))
    project = await run_in_threadpool(project_for, c, who, projectId)
    if project.user_id != userId:
        raise InputError("the project does not belong to this user")
    ctype = request.headers.get("content-type", "").lower()
    if ctype.startswith("multipart/form-data"):
        sim_id = new_id()
        try:
            got = await _receive(c, request, sim_id)
            name = got.fields.get("name", "")
            if not name.strip():
                raise InputError("name is required")
            sim = await run_in_threadpool(sims.create_simulation, c.store, projectId, userId, name,
                                          got.fields.get("description", ""), sim_id)  # fmt: skip
        except BaseException:
            shutil.rmtree(sims.simulation_dir(c.settings.data_dir, sim_id), ignore_errors=True)
            raise
        if got.files:
            await run_in_threadpool(sims.add_files, c.store, sim.id, got.files)
            await run_in_threadpool(c.jobs.submit, sim.id)
        return convert.simulation(await run_in_threadpool(sims.get_simulation, c.store, sim.id))
    if ctype.startswith("application/json"):
        try:
            body = schemas.SimulationCreate.model_validate_json(await request.body())
        except ValueError as exc:
            raise InputError("name is required" if "name" in str(exc) else "Invalid JSON format") from exc
        sim = await run_in_threadpool(sims.create_simulation, c.store, projectId, userId, body.name, body.description)
        return convert.simulation(sim)
    raise UnsupportedMediaTypeError("Content-Type must be application/json or multipart/form-data")


@router.get("/users/{userId}/simulations", response_model=list[schemas.Simulation], responses=errors(400, 401, 403))
def list_user_simulations(userId: HexId, c: Ctx, who: Caller) -> list[schemas.Simulation]:
    require_user_access(who, check_id(userId, "user"))
    return [convert.simulation(s) for s in sims.list_simulations(c.store, user_id=userId)]


@router.get("/projects/{projectId}/simulations", response_model=list[schemas.Simulation],
            responses=errors(400, 401, 404))  # fmt: skip
def list_project_simulations(projectId: HexId, c: Ctx, who: Caller) -> list[schemas.Simulation]:
    project_for(c, who, projectId)
    return [convert.simulation(s) for s in sims.list_simulations(c.store, project_id=projectId)]


@router.get("/simulations/{id}", response_model=schemas.Simulation, responses=errors(400, 401, 404))
def get_simulation(id: HexId, c: Ctx, who: Caller) -> schemas.Simulation:
    return convert.simulation(sim_for(c, who, id))


@router.put("/simulations/{id}", response_model=schemas.Simulation, responses=errors(400, 401, 404))
def update_simulation(id: HexId, body: schemas.ProjectUpdate, c: Ctx, who: Caller) -> schemas.Simulation:
    sim_for(c, who, id)
    return convert.simulation(sims.update_simulation(c.store, id, body.name, body.description))


@router.delete("/simulations/{id}", response_model=schemas.Message, responses=errors(400, 401, 404, 409))
def delete_simulation(id: HexId, c: Ctx, who: Caller) -> schemas.Message:
    """Removes the simulation's uploaded files, its ingested data and its record."""
    sim_for(c, who, id)
    c.jobs.refuse_if_active(id)
    c.remove_simulation(id)
    return schemas.Message(message="Simulation deleted successfully")


@router.post("/simulations/{id}/upload", response_model=schemas.UploadResponse,
             responses=errors(400, 401, 404, 409, 413, 415), openapi_extra=_UPLOAD_BODY)  # fmt: skip
async def upload(id: HexId, request: Request, c: Ctx, who: Caller) -> schemas.UploadResponse:
    """Adds files (multipart ``logfiles``) and starts processing them with the simulation's other files."""
    await run_in_threadpool(sim_for, c, who, id)
    await run_in_threadpool(c.jobs.refuse_if_active, id)
    if not request.headers.get("content-type", "").lower().startswith("multipart/form-data"):
        raise UnsupportedMediaTypeError("upload needs a multipart/form-data body with files in 'logfiles'")
    got = await _receive(c, request, id)
    if not got.files:
        raise InputError("No log files provided")
    await run_in_threadpool(sims.add_files, c.store, id, got.files)
    await run_in_threadpool(c.jobs.submit, id)
    c.forget_simulation(id)
    total = len((await run_in_threadpool(sims.get_simulation, c.store, id)).files)
    return schemas.UploadResponse(message="Log files uploaded successfully", uploadedFiles=len(got.files),
                                  totalFiles=total, uploadedFileNames=[f.stored_name for f in got.files])  # fmt: skip


@router.post("/simulations/{id}/process", status_code=202, response_model=schemas.ProcessResponse,
             responses=errors(400, 401, 404, 409))  # fmt: skip
def process(id: HexId, c: Ctx, who: Caller) -> schemas.ProcessResponse:
    """(Re)process every file of the simulation in the background; poll ``GET /simulations/{id}``."""
    sim = sim_for(c, who, id)
    if not sim.files:
        raise InputError("No log files available for processing")
    c.jobs.submit(id)
    c.forget_simulation(id)
    return schemas.ProcessResponse(message="Simulation processing started", simulationId=id, status="processing")
