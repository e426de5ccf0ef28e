"""Request dependencies: who is calling, and may they touch this user, project or simulation.

Every project and simulation belongs to a user; only that user or an admin may read or change it. A
project or simulation the caller may not see answers 404 exactly as one that does not exist, so ids
cannot be probed. Acting on another user's path (``/users/{id}/…``) answers 403.

Who the caller is comes from :mod:`bftscope.api.auth` (``Caller``, ``MaybeCaller``, re-exported here), which
checks the token before any body is read. In ``local`` auth mode (workstations only; the server refuses it
on a non-loopback address) no token is needed and every caller acts as a local admin.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Request
from starlette.concurrency import run_in_threadpool

from bftscope.api.auth import Caller, MaybeCaller
from bftscope.api.context import ApiContext
from bftscope.control import projects, simulations
from bftscope.control.records import Project, Simulation, User, valid_id
from bftscope.errors import ForbiddenError, InputError, NotFoundError

__all__ = ["Caller", "Ctx", "HexId", "MaybeCaller", "check_id", "ctx", "project_for", "require_user_access", "sim_for",
           "simulation_owner", "simulation_owner_async"]  # fmt: skip

# Ids are 24 lower-case hex characters; the pattern is declared in the OpenAPI document, while the check
# itself stays in the handlers so a bad id gets the original's message ("Invalid user ID").
HexId = Annotated[str, Path(json_schema_extra={"pattern": "^[0-9a-f]{24}$"})]


async def ctx(request: Request) -> ApiContext:
    c: ApiContext = request.app.state.ctx
    return c


Ctx = Annotated[ApiContext, Depends(ctx)]


def check_id(value: str, what: str) -> str:
    if not valid_id(value):
        raise InputError(f"Invalid {what} ID")
    return value


def require_user_access(who: User, user_id: str) -> None:
    if not who.is_admin and who.id != user_id:
        raise ForbiddenError("you may only act on your own user")


def project_for(c: ApiContext, who: User, project_id: str) -> Project:
    p = projects.get_project(c.store, check_id(project_id, "project"))
    if not who.is_admin and p.user_id != who.id:
        raise NotFoundError("Project not found")
    return p


def sim_for(c: ApiContext, who: User, sim_id: str) -> Simulation:
    m = simulations.get_simulation(c.store, check_id(sim_id, "simulation"))
    if not who.is_admin and m.user_id != who.id:
        raise NotFoundError("Simulation not found")
    return m


def simulation_owner(c: ApiContext, who: User, sim_id: str) -> tuple[str, int | None]:
    """(status, run id or None) of a simulation the caller may read; cached for the hot metric path."""
    check_id(sim_id, "simulation")
    hit = c.owners.get(sim_id)
    if hit is None:
        row = simulations.ownership(c.store, sim_id)
        if row is None:
            raise NotFoundError("Simulation not found")
        hit = (row[0], simulations.run_id_of(c.store, sim_id))
        # cache only a settled simulation: while it is processing its run is being rebuilt
        if hit[1] is not None and row[1] in ("completed", "failed", None):
            c.owners.put(sim_id, hit)
            c.owners.put((sim_id, "status"), row[2])
    owner, run_id = hit
    if not who.is_admin and owner != who.id:
        raise NotFoundError("Simulation not found")
    return owner, run_id


async def simulation_owner_async(c: ApiContext, who: User, sim_id: str) -> tuple[str, int | None]:
    """:func:`simulation_owner` without leaving the event loop when the answer is cached."""
    hit = c.owners.get(sim_id) if valid_id(sim_id) else None
    if hit is not None:
        if not who.is_admin and hit[0] != who.id:
            raise NotFoundError("Simulation not found")
        return hit  # type: ignore[no-any-return]
    return await run_in_threadpool(simulation_owner, c, who, sim_id)
