"""Simulations: create (JSON, or multipart with ``logfiles``), read, update, delete, upload, process.

Uploads stream to disk as they arrive (:mod:`bftscope.control.uploads`) with per-file and per-request
limits (413), safe names and no overwrites. Processing runs in the background
(:mod:`bftscope.control.jobs`); it starts by itself when files arrive — the original started it on
creation with files but not after an upload, which left the frontend's simulations pending forever —
and ``POST …/process`` reprocesses (without duplicating anything).
"""

from __future__ import annotations

import logging
import shutil
from functools import partial
from typing import Any

from fastapi import APIRouter, Request
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from bftscope.api import convert, schemas
from bftscope.api.context import ApiContext
from bftscope.api.deps import Caller, Ctx, HexId, check_id, project_for, require_user_access, sim_for
from bftscope.api.errors import errors
from bftscope.control import simulations as sims
from bftscope.control.archives import survey_upload
from bftscope.control.jobs import archive_limits
from bftscope.control.records import new_id
from bftscope.control.uploads import SavedFile, UploadLimits, UploadResult, receive_multipart
from bftscope.errors import (
    ClientDisconnectedError,
    FormatError,
    InputError,
    PayloadTooLargeError,
    UnsupportedMediaTypeError,
)

router = APIRouter(prefix="/v1", tags=["simulations"])
log = logging.getLogger("bftscope.api")

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


async def _receive(c: ApiContext, request: Request, sim_id: str, known: dict[str, str] | None = None) -> UploadResult:
    dest = sims.simulation_dir(c.settings.data_dir, sim_id) / "files"
    dest.mkdir(parents=True, exist_ok=True)
    try:
        return await receive_multipart(request.stream(), request.headers.get("content-type", ""), dest, _limits(c),
                                       known=known)  # fmt: skip
    except ClientDisconnect:
        # Not the server's fault and nothing to debug: one line, no traceback; the 499 is what the access
        # log and the request metrics count. receive_multipart has already deleted what it wrote.
        log.warning("upload to simulation %s: the client disconnected before the body ended; nothing kept", sim_id)
        raise ClientDisconnectedError("the client disconnected during the upload") from None


def _survey(c: ApiContext, sim_id: str, saved: list[SavedFile]) -> list[schemas.SkippedMember]:
    """List, while the client waits, the archive entries that will not be extracted and why.

    An archive refused as a whole (over a limit, corrupt) is listed with its own name as the entry: it
    stays stored, and processing fails that file with the same reason and keeps what the others give.
    """
    folder = sims.simulation_dir(c.settings.data_dir, sim_id) / "files"
    out: list[schemas.SkippedMember] = []
    limits = archive_limits(c.settings)
    for f in saved:
        try:
            skipped = [(s.member, s.reason) for s in survey_upload(folder / f.stored_name, limits).skipped]
        except (PayloadTooLargeError, FormatError) as exc:
            skipped = [(f.stored_name, f"not extracted: {exc.message}")]
        out += [schemas.SkippedMember(filePath=f.stored_name, member=m, reason=r) for m, r in skipped]
    return out


def _duplicates(got: UploadResult) -> list[schemas.DuplicateFile]:
    return [schemas.DuplicateFile(originalFilename=d.original_filename, sameAs=d.same_as) for d in got.duplicates]


@router.post("/users/{userId}/projects/{projectId}/simulations", status_code=201,
             response_model=schemas.SimulationCreated, responses=errors(400, 401, 403, 404, 413, 415),
             openapi_extra=_CREATE_BODY)  # fmt: skip
async def create_simulation(
    userId: HexId, projectId: HexId, request: Request, c: Ctx, who: Caller
) -> schemas.SimulationCreated:
    """JSON ``{name, description}`` creates an empty simulation (``logfile_required``); multipart fields
    ``name``, ``description`` and files ``logfiles`` create it with its files and start processing.
    Files whose bytes came earlier in the request are listed in ``duplicates``, archive entries that will
    not be extracted in ``skippedMembers``."""
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
            skipped = await run_in_threadpool(_survey, c, sim_id, got.files)
            sim = await run_in_threadpool(sims.create_simulation, c.store, projectId, userId, name,
                                          got.fields.get("description", ""), sim_id)  # fmt: skip
        except BaseException:
            shutil.rmtree(sims.simulation_dir(c.settings.data_dir, sim_id), ignore_errors=True)
            raise
        if got.files:
            await run_in_threadpool(sims.add_files, c.store, sim.id, got.files)
            await run_in_threadpool(c.jobs.submit, sim.id)
        created = convert.simulation(await run_in_threadpool(sims.get_simulation, c.store, sim.id))
        return schemas.SimulationCreated(**created.model_dump(), duplicates=_duplicates(got), skippedMembers=skipped)
    if ctype.startswith("application/json"):
        try:
            body = schemas.SimulationCreate.model_validate_json(await request.body())
        except ValidationError as exc:
            raise InputError(_json_problem(exc)) from exc
        sim = await run_in_threadpool(sims.create_simulation, c.store, projectId, userId, body.name, body.description)
        return schemas.SimulationCreated(**convert.simulation(sim).model_dump())
    raise UnsupportedMediaTypeError("Content-Type must be application/json or multipart/form-data")


def _json_problem(exc: ValidationError) -> str:
    """The first thing wrong with a JSON create body, in the original's words where it had some."""
    first = exc.errors()[0]
    if first["type"] == "json_invalid":
        return "Invalid JSON format"
    field = ".".join(str(p) for p in first["loc"]) or "body"
    if field == "name" and first["type"] in ("missing", "string_too_short", "string_pattern_mismatch"):
        return "name is required"
    return f"{field}: {first['msg']}"


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
    """Adds files (multipart ``logfiles``) and starts processing them with the simulation's other files.

    409 while the simulation is processed or receives another upload (and ``…/process`` answers 409
    while this upload streams). A file whose bytes the simulation already holds, or that came earlier
    in the request, is not kept but listed in ``duplicates``; archive entries that will not be
    extracted are listed in ``skippedMembers``. Processing starts only if something new was kept."""
    await run_in_threadpool(sim_for, c, who, id)
    if not request.headers.get("content-type", "").lower().startswith("multipart/form-data"):
        raise UnsupportedMediaTypeError("upload needs a multipart/form-data body with files in 'logfiles'")
    with c.jobs.uploading(id):
        sim = await run_in_threadpool(sims.get_simulation, c.store, id)
        got = await _receive(c, request, id, known={f.sha256: f.stored_name for f in sim.files})
        if not got.files and not got.duplicates:
            raise InputError("No log files provided")
        skipped = await run_in_threadpool(_survey, c, id, got.files)
        if got.files:
            await run_in_threadpool(sims.add_files, c.store, id, got.files)
            await run_in_threadpool(partial(c.jobs.submit, id, from_upload=True))
            c.forget_simulation(id)
    total = len(sim.files) + len(got.files)
    message = "Log files uploaded successfully" if got.files else "No new log files: every file is already stored"
    return schemas.UploadResponse(message=message, uploadedFiles=len(got.files), totalFiles=total,
                                  uploadedFileNames=[f.stored_name for f in got.files],
                                  duplicates=_duplicates(got), skippedMembers=skipped)  # fmt: skip


@router.post("/simulations/{id}/process", status_code=202, response_model=schemas.ProcessResponse,
             responses=errors(400, 401, 404, 409))  # fmt: skip
def process(id: HexId, c: Ctx, who: Caller) -> schemas.ProcessResponse:
    """(Re)process every file of the simulation in the background; poll ``GET /simulations/{id}``. 409 while
    it is already queued or processed, or while an upload to it is still streaming."""
    sim = sim_for(c, who, id)
    if not sim.files:
        c.jobs.refuse_if_active(id)  # a first upload still streaming records its files only at its end: 409
        raise InputError("No log files available for processing")
    c.jobs.submit(id)
    c.forget_simulation(id)
    return schemas.ProcessResponse(message="Simulation processing started", simulationId=id, status="processing")
