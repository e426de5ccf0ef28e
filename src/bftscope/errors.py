"""The bftscope error hierarchy.

::

    BftscopeError                 base; carries a stable ``code`` and an HTTP status for the API envelope
    ├── InputError                bad user input (paths, options, query parameters)          400
    │   ├── NothingIngestedError  an ingest found nothing it could read                      422
    │   └── PayloadTooLargeError  a body, upload or archive over its limit                   413
    ├── UnauthorizedError         no or unknown API token                                     401
    ├── ForbiddenError            the caller may not do this                                  403
    ├── UnsupportedMediaTypeError a body in a content type the route does not take           415
    ├── NotFoundError             a run, node, user … that does not exist                     404
    ├── ConflictError             a name already taken, a job already running                 409
    ├── StoreError                the store failed or refused                                 500
    │   └── QueryTimeoutError     a query ran past its time limit                             503
    ├── BusyError                 a limit of concurrent clients is reached (try again later)  503
    ├── FormatError               a source file is not in the format it claims               422
    ├── TransportError            a live source's connection failed (upstream)               502
    │   └── TransportClosed       the connection ended (the peer closed it, or a file ended)  502
    └── ClientDisconnectedError   the client went away mid-request (logged and counted only) 499

Every error renders to one JSON envelope: ``{"error": message, "code": code}`` plus the error's keyword
details as further fields (see :meth:`envelope`). :data:`ERROR_CODES` declares every code any layer may send
(the HTTP layer adds 405, 406, 429 and its own 500) with its status; the API's OpenAPI document lists them
as the envelope's ``code`` enum and a test pins the hierarchy, the table and docs/api.md together.
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "ERROR_CODES",
    "BftscopeError",
    "BusyError",
    "ClientDisconnectedError",
    "ConflictError",
    "ForbiddenError",
    "FormatError",
    "InputError",
    "NotFoundError",
    "NothingIngestedError",
    "PayloadTooLargeError",
    "QueryTimeoutError",
    "StoreError",
    "TransportClosed",
    "TransportError",
    "UnauthorizedError",
    "UnsupportedMediaTypeError",
]


ERROR_CODES: dict[str, int] = {
    "invalid_input": 400,
    "unauthorized": 401,
    "forbidden": 403,
    "not_found": 404,
    "method_not_allowed": 405,
    "not_acceptable": 406,
    "conflict": 409,
    "payload_too_large": 413,
    "unsupported_media_type": 415,
    "nothing_ingested": 422,
    "bad_format": 422,
    "rate_limited": 429,
    "client_disconnected": 499,
    "internal_error": 500,
    "transport_error": 502,
    "store_error": 500,
    "query_timeout": 503,
    "busy": 503,
}


class BftscopeError(Exception):
    code: ClassVar[str] = "internal_error"
    status: ClassVar[int] = 500

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def envelope(self) -> dict[str, Any]:
        body: dict[str, Any] = {**self.details, "error": self.message, "code": self.code}
        return body


class InputError(BftscopeError):
    code = "invalid_input"
    status = 400


class NothingIngestedError(InputError):
    code = "nothing_ingested"
    status = 422


class PayloadTooLargeError(InputError):
    code = "payload_too_large"
    status = 413


class UnauthorizedError(BftscopeError):
    code = "unauthorized"
    status = 401


class ForbiddenError(BftscopeError):
    code = "forbidden"
    status = 403


class UnsupportedMediaTypeError(BftscopeError):
    code = "unsupported_media_type"
    status = 415


class NotFoundError(BftscopeError):
    code = "not_found"
    status = 404


class ConflictError(BftscopeError):
    code = "conflict"
    status = 409


class StoreError(BftscopeError):
    code = "store_error"
    status = 500


class QueryTimeoutError(StoreError):
    code = "query_timeout"
    status = 503


class BusyError(BftscopeError):
    """A limit of concurrent clients is reached (a Casper network's subscribers): try again later."""

    code = "busy"
    status = 503


class FormatError(BftscopeError):
    code = "bad_format"
    status = 422


class TransportError(BftscopeError):
    """A source's connection failed: refused, reset, a bad status, a protocol error. A live runner
    reconnects; the batch pipeline reports it as the file's error."""

    code = "transport_error"
    status = 502


class TransportClosed(TransportError):
    """The connection ended in order: the peer closed it, or a finite source (a file, a recording) ran out."""


class ClientDisconnectedError(BftscopeError):
    """Nobody reads the answer: the status exists so logs and metrics count a client disconnect as such
    (nginx's 499, "client closed request"), never as a server error."""

    code = "client_disconnected"
    status = 499
