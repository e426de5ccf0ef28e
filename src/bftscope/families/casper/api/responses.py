"""How the Casper routes answer: JSON bodies, the seed's text errors, the sidecar's JSON errors, and how each
route declares them in the OpenAPI document.

The seed answered errors as text (``Block not found.``, ``Deploy not found.``, ``Bad Request``); a 400 here
adds what was wrong after the seed's words (``Bad Request: limit must be …``). The sidecar answered
``{"code": 400|404, "message": …}``. Errors that are the API's, not the route's — no token (401), a network
the caller may not see (404), rate limits (429), a query timeout (503) — keep the API's envelope
(``{"error", "code"}``), so each status below may carry either.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, ParamSpec

import msgspec
import orjson
from fastapi.responses import Response

from bftscope.api.errors import errors
from bftscope.api.schemas import ErrorBody
from bftscope.families.casper.api.models import SidecarError
from bftscope.families.casper.api.params import ParamError

__all__ = ["SEED_RESPONSES", "SIDECAR_RESPONSES", "SidecarFailure", "json", "raw_json", "seed_errors",
           "sidecar_errors", "sidecar_failure", "text"]  # fmt: skip

P = ParamSpec("P")

_TEXT = {"text/plain": {"schema": {"type": "string"}}}


def _declared(**own: dict[str, Any]) -> dict[int | str, dict[str, Any]]:
    declared = errors(400, 401, 404, 503)
    for status in (400, 404):
        declared[status] = {**declared[status], **own}
    return declared


# Both mounts: the route's own errors beside the API's (a token, the network, rate limits, timeouts).
SEED_RESPONSES = _declared(content=_TEXT)
SIDECAR_RESPONSES = _declared(model=SidecarError | ErrorBody)  # type: ignore[arg-type]


def json(body: Any) -> Response:
    # msgspec, not orjson: a deploy's cost is a U512 and may pass 2^64 (the real sample does); it is sent exact
    return Response(msgspec.json.encode(body), media_type="application/json")


def raw_json(body: bytes) -> Response:
    return Response(body, media_type="application/json")


def text(status: int, body: str) -> Response:
    return Response(body, status_code=status, media_type="text/plain; charset=utf-8")


def seed_errors(handler: Callable[P, Response]) -> Callable[P, Response]:
    """A seed route answering a bad parameter as the seed's ``Bad Request`` text (with the reason)."""

    @wraps(handler)
    def run(*args: P.args, **kwargs: P.kwargs) -> Response:
        try:
            return handler(*args, **kwargs)
        except ParamError as exc:
            return text(400, f"Bad Request: {exc}")

    return run


class SidecarFailure(Exception):
    """An answer in the sidecar's error JSON."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def sidecar_failure(status: int, message: str) -> Response:
    return Response(orjson.dumps({"code": status, "message": message}), status_code=status,
                    media_type="application/json")  # fmt: skip


def sidecar_errors(handler: Callable[P, Response]) -> Callable[P, Response]:
    """A sidecar route answering its failures, and a bad parameter, in the sidecar's error JSON."""

    @wraps(handler)
    def run(*args: P.args, **kwargs: P.kwargs) -> Response:
        try:
            return handler(*args, **kwargs)
        except SidecarFailure as exc:
            return sidecar_failure(exc.status, exc.message)
        except ParamError as exc:
            return sidecar_failure(400, f"Invalid parameter in query: {exc}")

    return run
