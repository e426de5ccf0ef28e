"""``/v1/users``: create (returns the user's first API token), list, read, delete (cascades).

An anonymous create is the bootstrap of the first admin, open only while no user has ever existed and
``anonymous_bootstrap`` is on (:mod:`bftscope.control.users` makes it atomic). Otherwise only an admin may
create users (in local mode every caller is the local admin). No SQL here: the control plane owns it.
"""

from __future__ import annotations

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from bftscope.api import convert, schemas
from bftscope.api.auth import NO_BOOTSTRAP
from bftscope.api.deps import Caller, Ctx, HexId, MaybeCaller, check_id, require_user_access
from bftscope.api.errors import errors
from bftscope.api.routes.networks import remove_networks_of
from bftscope.control import users
from bftscope.errors import ForbiddenError, UnauthorizedError

router = APIRouter(prefix="/v1", tags=["users"])


@router.post("/users", status_code=201, response_model=schemas.UserCreated, responses=errors(400, 401, 403, 409))
def create_user(body: schemas.UserCreate, c: Ctx, who: MaybeCaller) -> schemas.UserCreated:
    if who is None:
        if not c.settings.anonymous_bootstrap:
            raise UnauthorizedError(NO_BOOTSTRAP)
        user, token = users.create_first_admin(c.store, body.username, body.email)
    elif not who.is_admin:
        raise ForbiddenError("only an admin may create users")
    else:
        user, token = users.create_user(c.store, body.username, body.email)
    return schemas.UserCreated(**convert.user(user).model_dump(), token=token)


@router.get("/users", response_model=list[schemas.User], responses=errors(401))
def list_users(c: Ctx, who: Caller) -> list[schemas.User]:
    """Every user for an admin; a user sees only themself."""
    return [convert.user(u) for u in users.list_users(c.store, None if who.is_admin else who.id)]


@router.get("/users/{userId}", response_model=schemas.User, responses=errors(400, 401, 403, 404))
def get_user(userId: HexId, c: Ctx, who: Caller) -> schemas.User:
    require_user_access(who, check_id(userId, "user"))
    return convert.user(users.get_user(c.store, userId))


@router.delete("/users/{userId}", response_model=schemas.Message, responses=errors(400, 401, 403, 404, 409))
async def delete_user(userId: HexId, c: Ctx, who: Caller) -> schemas.Message:
    """Deletes the user's tokens, projects, simulations (their files and data) and networks (no longer
    followed; their data removed) too."""
    require_user_access(who, check_id(userId, "user"))
    await run_in_threadpool(c.refuse_if_processing, "user_id", userId)
    await run_in_threadpool(users.delete_user, c.store, userId, c.remove_simulation)
    c.tokens.drop()
    await remove_networks_of(c, userId)
    return schemas.Message(message="User deleted successfully")


def ensure_user(c: Ctx, user_id: str) -> None:
    """404 for an unknown user, except in local mode, where the original frontend's hard-wired user id is
    created on first use (so the frontend works on an empty workstation)."""
    if c.settings.auth_mode == "local":
        users.ensure_local_user(c.store, user_id)
        return
    users.get_user(c.store, user_id)
