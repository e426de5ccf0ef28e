"""Authentication: who is calling, decided before a route reads a byte of the request body.

FastAPI reads and parses a route's JSON body *before* it runs the route's dependencies, so checking the
token in a dependency alone let anyone make the server read (and hold) a body first: an anonymous 1 GB
``PUT`` grew the server to 2.9 GiB before it answered 401. :class:`AuthGateMiddleware` therefore sits just
outside the app (inside the body limit and the rate limit) and, for a route that needs a caller, resolves
the token from the headers first; a request without a valid one is answered 401 unread. The user it finds
is left in the scope, where the :data:`Caller` dependency picks it up, so each request looks its token up
once.

Which routes need a caller is read from the routes themselves — a route that depends on :func:`caller`
needs a token; one that depends on :func:`optional_caller` (``POST /v1/users``) admits an anonymous caller
only for the first-user bootstrap, and only while it is open — so a new route cannot be forgotten here.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from bftscope.api.context import ApiContext
from bftscope.api.middleware.envelope import send_error
from bftscope.api.middleware.scopeinfo import MatchedRoute, matched_route
from bftscope.control import users
from bftscope.control.records import User
from bftscope.errors import BftscopeError, UnauthorizedError

__all__ = ["LOCAL_ADMIN", "NO_BOOTSTRAP", "AuthGateMiddleware", "Caller", "MaybeCaller", "authenticate", "caller",
           "optional_caller"]  # fmt: skip

LOCAL_ADMIN = User("000000000000000000000000", "local", "local@localhost", True,
                   datetime(2000, 1, 1, tzinfo=UTC).replace(tzinfo=None),
                   datetime(2000, 1, 1, tzinfo=UTC).replace(tzinfo=None))  # fmt: skip

MISSING = "missing API token: send 'Authorization: Bearer <token>'"
BOOTSTRAP_CLOSED = "missing API token: only an admin may create users"
NO_BOOTSTRAP = ("missing API token: anonymous user creation is disabled (BFTSCOPE_ANONYMOUS_BOOTSTRAP=false);"
                " create an admin with 'bftscope users create NAME --admin'")  # fmt: skip

_STATE_KEY = "bftscope_caller"  # in scope["state"], i.e. request.state.bftscope_caller


async def authenticate(c: ApiContext, headers: Headers) -> User | None:
    """The user the request's token belongs to; None when no ``Authorization`` header was sent; 401 for a
    malformed or unknown token. In local mode every caller is the local admin. Async with a cache in front,
    so the hot path never leaves the event loop; a cache miss looks the token up on a worker thread."""
    if c.settings.auth_mode == "local":
        return LOCAL_ADMIN
    header = headers.get("authorization")
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise UnauthorizedError(MISSING)
    user = c.tokens.get(token)
    if user is None:
        user = await run_in_threadpool(users.user_for_token, c.store, token)
        if user is None:
            raise UnauthorizedError("unknown API token")
        c.tokens.put(token, user)
    assert isinstance(user, User)
    return user


async def anonymous_create_refusal(c: ApiContext) -> UnauthorizedError | None:
    """Why an anonymous ``POST /v1/users`` must be refused now, or None while the bootstrap is open. Once
    closed it never reopens, so that answer is remembered and costs no query afterwards."""
    if not c.settings.anonymous_bootstrap:
        return UnauthorizedError(NO_BOOTSTRAP)
    if c.bootstrap_closed:
        return UnauthorizedError(BOOTSTRAP_CLOSED)
    if not await run_in_threadpool(users.bootstrap_open, c.store):
        c.bootstrap_closed = True
        return UnauthorizedError(BOOTSTRAP_CLOSED)
    return None


async def caller(request: Request) -> User:
    """The authenticated caller (the gate already resolved it; resolved here when no gate ran)."""
    state: dict[str, Any] = request.scope.get("state", {})
    user = state.get(_STATE_KEY) or await authenticate(request.app.state.ctx, request.headers)
    if user is None:
        raise UnauthorizedError(MISSING)
    assert isinstance(user, User)
    return user


async def optional_caller(request: Request) -> User | None:
    """The caller when a token is sent (or in local mode); None for an anonymous bootstrap request."""
    state: dict[str, Any] = request.scope.get("state", {})
    if _STATE_KEY in state:
        found: User | None = state[_STATE_KEY]
        return found
    return await authenticate(request.app.state.ctx, request.headers)


Caller = Annotated[User, Depends(caller)]
MaybeCaller = Annotated[User | None, Depends(optional_caller)]


def _needs(dependant: Any) -> str | None:
    """"token" when a route's dependency tree contains :func:`caller`, "optional" for
    :func:`optional_caller`, else None."""
    found = None
    for sub in getattr(dependant, "dependencies", ()):
        if sub.call is caller:
            return "token"
        if sub.call is optional_caller:
            found = "optional"
        found = _needs(sub) or found
        if found == "token":
            return found
    return found


class AuthGateMiddleware:
    """Refuse a request to a route that needs a caller (401) before the app reads its body."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._needs: dict[int, str | None] = {}

    def _need(self, matched: MatchedRoute) -> str | None:
        key = id(matched.route)
        if key not in self._needs:
            self._needs[key] = _needs(getattr(matched.route, "dependant", None))
        return self._needs[key]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = matched_route(scope) if scope["type"] == "http" else None
        need = self._need(route) if route is not None else None
        if need is None:
            await self.app(scope, receive, send)
            return
        c: ApiContext = scope["app"].state.ctx
        try:
            user = await authenticate(c, Headers(scope=scope))
            if user is None:
                refusal = UnauthorizedError(MISSING) if need == "token" else await anonymous_create_refusal(c)
                if refusal is not None:
                    raise refusal
        except BftscopeError as exc:
            await send_error(send, exc)
            return
        scope.setdefault("state", {})[_STATE_KEY] = user
        await self.app(scope, receive, send)
