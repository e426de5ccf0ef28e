"""Every error the API sends uses one JSON envelope, ``{"error": message, "code": code}``.

This module maps bftscope's error hierarchy, FastAPI's request-validation errors and Starlette's HTTP
errors (404 for unknown paths, 405, a body FastAPI could not parse) onto that envelope, with a code from
:data:`~bftscope.errors.ERROR_CODES`, and declares the error responses of each route in the OpenAPI
document (:func:`errors`).

It also answers the trailing-slash redirect. Starlette's own built an absolute ``Location`` from the
request's ``Host`` header, which the client controls (a poisoned cache or a proxy that forwards any Host
turns it into an open redirect); ours is relative to the server: the path, toggled, with the query.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException

from bftscope.api.middleware.scopeinfo import path_has_route
from bftscope.api.schemas import ErrorBody
from bftscope.errors import ERROR_CODES, BftscopeError, BusyError, QueryTimeoutError

__all__ = ["ERROR_CODES", "errors", "install_error_handlers"]

log = logging.getLogger("bftscope.api")

# the code for an HTTP error raised by the framework: the first code declared for its status
_CODE_OF_STATUS: dict[int, str] = {}
for _code, _status in ERROR_CODES.items():
    _CODE_OF_STATUS.setdefault(_status, _code)

_DESCRIPTIONS = {400: "Bad request", 401: "Missing or unknown API token", 403: "Forbidden", 404: "Not found",
                 409: "Conflict", 413: "Payload too large", 415: "Unsupported media type", 422: "Unprocessable",
                 429: "Rate limited", 503: "Query timed out, or a limit of clients reached"}  # fmt: skip


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for the given error statuses (plus 429, which any route may send)."""
    return {code: {"model": ErrorBody, "description": _DESCRIPTIONS[code]} for code in sorted({*codes, 429})}


def _body(message: str, code: str, **extra: Any) -> dict[str, Any]:
    return {"error": message, "code": code, **{k: v for k, v in extra.items() if v is not None}}


def _where(loc: Any) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "request"


def _detail(e: Any) -> str:
    """One validation error in the original's words ("Username must be at least 3 characters")."""
    field = _where(e.get("loc", ()))
    name = field[:1].upper() + field[1:]
    kind, ctx = e.get("type", ""), e.get("ctx") or {}
    if kind == "missing":
        return f"{name} is required"
    if kind == "json_invalid":
        return "Invalid JSON format"
    if kind == "string_too_short":
        return f"{name} must be at least {ctx.get('min_length')} characters"
    if kind == "string_too_long":
        return f"{name} must be at most {ctx.get('max_length')} characters"
    if kind == "value_error" and ctx.get("error") is not None:
        return str(ctx["error"])  # our own validators' messages say what is wrong
    if kind == "string_pattern_mismatch":
        if field == "email":
            return "Invalid email format"
        if field == "username":
            return f"{name} must contain only alphanumeric characters"
    return f"{name} is invalid"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(BftscopeError)
    async def _bftscope(_: Request, exc: BftscopeError) -> JSONResponse:
        if isinstance(exc, BusyError):  # a limit of clients: our own words, safe to send (no SQL, no path)
            return JSONResponse(exc.envelope(), status_code=exc.status, headers={"Retry-After": "5"})
        if exc.status >= 500:
            # the store's own message can carry SQL and paths: log it, never send it
            log.error("request failed: %s", exc.message)
            message = "the query took too long" if isinstance(exc, QueryTimeoutError) else "Database error"
            return JSONResponse(_body(message, exc.code), status_code=exc.status)
        return JSONResponse(exc.envelope(), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        details = [_detail(e) for e in exc.errors()]
        return JSONResponse(_body("Validation failed", "invalid_input", details=details), status_code=400)

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> Response:
        if exc.status_code == 404 and (location := _slash_redirect(request)) is not None:
            return Response(status_code=307, headers={"Location": location})
        status = exc.status_code
        code = _CODE_OF_STATUS.get(status, "internal_error" if status >= 500 else "invalid_input")
        message = "Not found" if status == 404 else str(exc.detail)
        return JSONResponse(_body(message, code), status_code=status, headers=exc.headers)


def _slash_redirect(request: Request) -> str | None:
    """The relative location of the same path with its trailing slash toggled, when a route serves that
    path (any method, as Starlette did); None otherwise. Never a ``//host`` (scheme-relative) location."""
    path: str = request.scope.get("path", "")
    root: str = request.scope.get("root_path", "")
    route = path[len(root):] if root and path.startswith(root) else path
    if route in ("", "/"):
        return None
    other = route.rstrip("/") if route.endswith("/") else route + "/"
    if not other.startswith("/") or other.startswith("//") or not path_has_route(request.app, other):
        return None
    query = request.scope.get("query_string", b"").decode("latin-1")
    # re-escaped: the decoded path may hold characters a header cannot carry (and a CR/LF must never pass)
    return quote(root + other, safe="/:@!$&'()*+,;=~") + (f"?{quote(query, safe='=&+%/:,;')}" if query else "")
