"""The ``ApiVersion`` handshake of one SSE connection: :class:`HandshakeTransport`.

A node's first event on every connection is ``{"ApiVersion":"x.y.z"}`` with no id. The wrapper opens the
inner transport and reads that first frame before the connection counts as open: anything else first is a
failed connection (a :class:`~bftscope.errors.TransportError`, counted in ``bad_handshakes``, retried); a
version the follower cannot read (:mod:`.version`) raises :class:`IncompatibleNode`, which the live runner
does not retry. The live runner then sees only the events after the handshake.
"""

from __future__ import annotations

from bftscope.errors import TransportError
from bftscope.families.casper.decoder import CasperDecoder
from bftscope.families.casper.follow.version import incompatibility
from bftscope.sources.base import Frame, Transport

__all__ = ["HandshakeTransport", "IncompatibleNode"]


class IncompatibleNode(Exception):
    """The node's ApiVersion cannot be followed (not retried)."""


class HandshakeTransport(Transport):
    def __init__(self, inner: Transport, decoder: CasperDecoder) -> None:
        self.inner = inner
        self.name = inner.name
        self.decoder = decoder
        self.version: str | None = None
        self.incompatible: str | None = None
        self.bad_handshakes = 0
        self.last_bad: str | None = None

    async def open(self, resume_from: str | None = None) -> None:
        await self.inner.open(resume_from)
        first = await self.inner.receive()
        events = self.decoder.feed(first)
        if not events or events[0].type != "ApiVersion":
            self.bad_handshakes += 1
            self.last_bad = f"first event is not ApiVersion: {first.data[:80]!r}"
            raise TransportError(self.last_bad)
        version = str(events[0].fields["version"])
        self.version = version
        if (why := incompatibility(version)) is not None:
            self.incompatible = why
            raise IncompatibleNode(why)

    async def receive(self) -> Frame:
        return await self.inner.receive()

    async def close(self) -> None:
        await self.inner.close()
