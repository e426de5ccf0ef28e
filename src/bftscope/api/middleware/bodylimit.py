"""Request body size limit for everything but uploads: 413 before the body is held in memory.

Two checks, because ``Content-Length`` is optional: a declared length over the limit is refused before
a byte is read; otherwise the bytes are counted as the app pulls them from ``receive`` (chunked bodies,
or a client sending more than it declared). Once the count passes the limit the read is aborted with an
exception, the rest is never read, and whatever the app makes of the aborted read (FastAPI turns it into
a 400) is replaced by our 413. Nothing is buffered here: each chunk is counted and handed on.

Upload routes are exempt from the JSON limit (see :class:`MiddlewareConfig`): they stream to disk under
their own limits, and only their declared ``Content-Length`` is checked here, against the upload request
limit. Whether a request is an upload is decided by the route the router will serve it with
(:func:`~.scopeinfo.matched_route`), never by how the path ends: a suffix rule let ``PUT /v1/projects/upload``
(a project update) take an unlimited JSON body.

Nothing here reads a body: the authentication gate inside refuses a request without a valid token before
the app pulls a byte (see :mod:`bftscope.api.auth`).
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bftscope.api.middleware.config import MiddlewareConfig
from bftscope.api.middleware.envelope import PayloadTooLargeError, send_error
from bftscope.api.middleware.scopeinfo import matched_route, request_headers
from bftscope.errors import InputError

__all__ = ["BodyLimitMiddleware"]


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, config: MiddlewareConfig) -> None:
        self.app = app
        self._limit = config.max_body_bytes
        self._upload_limit = config.max_upload_bytes
        self._uploads = frozenset(config.upload_routes)
        self._multipart_uploads = frozenset(config.multipart_upload_routes)

    def _is_upload(self, scope: Scope, headers: Headers) -> bool:
        route = matched_route(scope)
        if route is None:
            return False
        key = f"{scope['method']} {route.template}"
        if key in self._uploads:
            return True
        content_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
        return content_type == "multipart/form-data" and key in self._multipart_uploads

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = request_headers(scope)
        upload = self._is_upload(scope, headers)
        limit = self._upload_limit if upload else self._limit

        declared = headers.get("content-length")
        if declared is not None:
            declared = declared.strip()
            if not (declared.isascii() and declared.isdigit()):
                await send_error(send, InputError("Invalid Content-Length header"))
                return
            if limit is not None and int(declared) > limit:
                await send_error(send, _too_large(limit))
                return
        if upload:  # streamed upload bytes are counted where they are stored, against per-file limits too
            await self.app(scope, receive, send)
            return

        received = 0
        started = False  # the app has begun its response
        refused = False  # the limit was passed before that: the response is ours to send

        async def counting_receive() -> Message:
            nonlocal received, refused
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self._limit:
                    refused = not started
                    raise _too_large(self._limit)
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if refused:
                return  # the app's reaction to the aborted read; our 413 replaces it
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except Exception:
            if not refused:
                raise  # includes passing the limit mid-response: the server must cut the connection
        if refused:
            await send_error(send, _too_large(self._limit))


def _too_large(limit: int) -> PayloadTooLargeError:
    return PayloadTooLargeError(f"Request body exceeds {limit} bytes")
