"""Server-sent events: the frame parser, and a transport that reads an SSE stream over HTTP (httpx).

The parser follows the WHATWG "event stream interpretation" rules, because real servers use all of them:
lines end in CRLF, LF or CR (a CR at the end of one chunk and the LF at the start of the next are one line
end); ``:`` starts a comment (Casper's keep-alives); ``field: value`` loses one leading space; several
``data:`` lines join with ``\\n``; ``id:`` sets the last event id, which stays until changed and is what a
reconnect sends as ``Last-Event-ID``; ``retry:`` takes only digits; an event is dispatched at a blank line
and only if it has data; a leading BOM is dropped; an event still open when the stream ends is discarded
(the server re-sends it after a resume). It is fed chunks of any size and keeps only the unfinished line.
"""

from __future__ import annotations

import asyncio
import functools
import re
import ssl
from collections.abc import AsyncIterator, Mapping

import httpx

from bftscope.errors import TransportClosed, TransportError
from bftscope.sources.base import Frame, Transport

__all__ = ["SSEParser", "SSETransport"]

_EOL = re.compile(rb"\r\n|\r|\n")


@functools.cache
def _tls() -> ssl.SSLContext:
    """httpx's default TLS context, made once: building it (the CA bundle) cost ~17 ms per connection, which a
    follower reconnecting often (a node dropping it) paid every time."""
    return httpx.create_ssl_context()
_BOM = b"\xef\xbb\xbf"


class SSEParser:
    """Bytes of an event stream → :class:`Frame` s, fed in chunks split anywhere."""

    def __init__(self) -> None:
        self._buf = b""
        self._started = False  # the BOM check is for the first bytes of the stream only
        self._skip_lf = False  # the previous chunk ended with CR: an LF first in this one ends nothing
        self._data: list[bytes] = []
        self._event = ""
        self.last_id: str | None = None
        self.retry: int | None = None
        self.comments = 0

    def feed(self, chunk: bytes) -> list[Frame]:
        if not chunk:
            return []  # an empty read changes nothing (it must not forget a CR the last chunk ended with)
        if self._skip_lf and chunk[:1] == b"\n":
            chunk = chunk[1:]
        self._skip_lf = False
        buf = self._buf + chunk if self._buf else chunk
        if not self._started:
            if len(buf) < len(_BOM) and _BOM.startswith(buf):
                self._buf = buf  # too short to tell yet
                return []
            self._started = True
            if buf.startswith(_BOM):
                buf = buf[len(_BOM) :]
        out: list[Frame] = []
        if b"\r" not in buf:  # the usual stream: LF line ends only, split without the regex
            *lines, self._buf = buf.split(b"\n")
            for raw in lines:
                frame = self._line(raw)
                if frame is not None:
                    out.append(frame)
            return out
        pos = 0
        for m in _EOL.finditer(buf):
            if m.group() == b"\r" and m.end() == len(buf):
                self._skip_lf = True  # maybe the first half of a CRLF split across chunks
            frame = self._line(buf[pos : m.start()])
            if frame is not None:
                out.append(frame)
            pos = m.end()
        self._buf = buf[pos:]
        return out

    def pending(self) -> bool:
        """True when an unfinished event (or line) is held: what ending the stream now would discard."""
        return bool(self._data or self._buf or self._event)

    def _line(self, raw: bytes) -> Frame | None:
        # Lines stay bytes: a data line (most of the stream, JSON of hundreds of bytes) is not decoded here to
        # be encoded again; the UTF-8 decoding the standard asks for (invalid bytes replaced) is applied to an
        # event's data when it is not plain ASCII (_dispatch), with the same result as line by line.
        if not raw:
            return self._dispatch()
        if raw[:1] == b":":
            self.comments += 1
            return None
        field, colon, value = raw.partition(b":")
        if colon and value[:1] == b" ":
            value = value[1:]
        if field == b"data":
            self._data.append(value)
        elif field == b"event":
            self._event = value.decode("utf-8", errors="replace")
        elif field == b"id" and b"\0" not in value:
            self.last_id = value.decode("utf-8", errors="replace")
        elif field == b"retry" and value.isascii() and value.isdigit():
            self.retry = int(value)
        # any other field is ignored, as the standard says
        return None

    def _dispatch(self) -> Frame | None:
        data, event = self._data, self._event
        self._data, self._event = [], ""
        if not data:
            return None
        joined = data[0] if len(data) == 1 else b"\n".join(data)
        if not joined.isascii():
            joined = joined.decode("utf-8", errors="replace").encode()
        return Frame(joined, id=self.last_id, event=event or "message", retry=self.retry)


class SSETransport(Transport):
    """An SSE stream over HTTP GET. A resume sends ``Last-Event-ID`` and, when ``resume_param`` is set,
    that query parameter too (Casper's ``start_from``). ``transport`` is an httpx transport for tests
    (``httpx.MockTransport``); ``timeout`` bounds connecting (None: no bound). ``idle_timeout``: no bytes at
    all — not even a ``:`` keep-alive comment — for that many seconds is a lost connection (a
    :class:`TransportError`); None: a quiet stream is fine."""

    def __init__(
        self,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        resume_param: str | None = None,
        timeout: float | None = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
        name: str = "sse",
        idle_timeout: float | None = None,
    ) -> None:
        self.url = url
        self.idle_timeout = idle_timeout
        self.name = name
        self._headers = dict(headers or {})
        self._resume_param = resume_param
        self._timeout = httpx.Timeout(timeout, read=None) if timeout is not None else httpx.Timeout(None)
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._response: httpx.Response | None = None
        self._chunks: AsyncIterator[bytes] | None = None
        self._parser = SSEParser()
        self._ready: list[Frame] = []

    async def open(self, resume_from: str | None = None) -> None:
        await self.close()
        self._parser = SSEParser()  # a new connection starts a new stream; a half event is gone
        self._parser.last_id = resume_from
        self._ready = []
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache", **self._headers}
        params: dict[str, str] = {}
        if resume_from is not None:
            headers["Last-Event-ID"] = resume_from
            if self._resume_param:
                params[self._resume_param] = resume_from
        self._client = httpx.AsyncClient(timeout=self._timeout, transport=self._transport, verify=_tls())
        try:
            request = self._client.build_request("GET", self.url, headers=headers, params=params)
            self._response = await self._client.send(request, stream=True)
        except httpx.HTTPError as exc:
            await self.close()
            raise TransportError(f"cannot connect to {self.url}: {type(exc).__name__}: {exc}") from exc
        if self._response.status_code != 200:
            status = self._response.status_code
            await self.close()
            raise TransportError(f"{self.url} answered {status}, not an event stream", status=status)
        self._chunks = self._response.aiter_bytes()

    async def receive(self) -> Frame:
        while not self._ready:
            if self._chunks is None:
                raise TransportError("not open")
            try:
                async with asyncio.timeout(self.idle_timeout):  # not wait_for: on 3.11 it can swallow a cancel
                    chunk = await anext(self._chunks)
            except TimeoutError:
                raise TransportError(f"{self.url}: no bytes for {self.idle_timeout:g} s") from None
            except StopAsyncIteration:
                raise TransportClosed(f"{self.url} closed the stream") from None
            except httpx.HTTPError as exc:
                raise TransportError(f"{self.url}: {type(exc).__name__}: {exc}") from exc
            self._ready = self._parser.feed(chunk)
        return self._ready.pop(0)

    async def close(self) -> None:
        response, client = self._response, self._client
        self._response = self._client = None
        self._chunks = None
        if response is not None:
            await response.aclose()
        if client is not None:
            await client.aclose()
