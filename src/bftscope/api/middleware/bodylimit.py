"""Request body size limit for everything but uploads: 413 before the body is held in memory.

Two checks, because ``Content-Length`` is optional: a declared length over the limit is refused before
a byte is read; otherwise the bytes are counted as the app pulls them from ``receive`` (chunked bodies,
or a client sending more than it declared). Once the count passes the limit the read is aborted with an
exception, the rest is never read, and whatever the app makes of the aborted read (FastAPI turns it into
a 400) is replaced by our 413. Nothing is buffered here: each chunk is counted and handed on.

Upload routes are exempt (see :class:`MiddlewareConfig`): they stream to disk under their own limits.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bftscope.api.middleware.config import MiddlewareConfig
from bftscope.api.middleware.envelope import PayloadTooLargeError, send_error
from bftscope.api.middleware.scopeinfo import request_headers, route_path
from bftscope.errors import InputError

__all__ = ["BodyLimitMiddleware", "compile_path_templates"]


def compile_path_templates(templates: Iterable[str]) -> tuple[re.Pattern[str], ...]:
    """``"/v1/users/{id}/runs"`` → a pattern where each ``{…}`` matches exactly one path segment."""
    patterns = []
    for template in templates:
        pieces = re.split(r"\{[^/{}]*\}", template)
        patterns.append(re.compile("[^/]+".join(re.escape(piece) for piece in pieces)))
    return tuple(patterns)


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, config: MiddlewareConfig) -> None:
        self.app = app
        self._limit = config.max_body_bytes
        self._upload_suffixes = tuple(config.upload_path_suffixes)
        self._multipart_uploads = compile_path_templates(config.multipart_upload_paths)

    def _is_upload(self, scope: Scope, headers: Headers) -> bool:
        path = route_path(scope)
        if self._upload_suffixes and path.endswith(self._upload_suffixes):
            return True
        if scope["method"] != "POST" or not self._multipart_uploads:
            return False
        content_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
        return content_type == "multipart/form-data" and any(p.fullmatch(path) for p in self._multipart_uploads)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = request_headers(scope)
        if self._is_upload(scope, headers):
            await self.app(scope, receive, send)
            return

        declared = headers.get("content-length")
        if declared is not None:
            declared = declared.strip()
            if not (declared.isascii() and declared.isdigit()):
                await send_error(send, InputError("Invalid Content-Length header"))
                return
            if int(declared) > self._limit:
                await send_error(send, _too_large(self._limit))
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
