"""How a replayed node writes its events on the wire: the SSE bytes of an event, and the ways a real network
cuts and joins them (:class:`Wire`).

A node writes ``data:<JSON>`` then ``id:<n>`` then a blank line; a payload that spans several lines (a
pretty-printed fixture) is one ``data:`` line per line, which a parser joins with ``\\n``. The response body is
HTTP/1.1 chunked, one chunk per write, so what a write holds is what the client's reads see: several events
batched in one write, one event split across writes at random boundaries, CRLF or LF line ends — the cases the
seed's event store lost events on.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

__all__ = ["Wire", "event_bytes", "http_chunk", "pieces"]


@dataclass(frozen=True)
class Wire:
    """``batch``: events per write; ``split``: cut every write at random boundaries into several;
    ``crlf``: CRLF line ends; ``drop_every``: a connection is dropped (aborted, maybe mid-event) after a random
    number of events drawn from 1..2·``drop_every``, at most ``max_drops`` times in all; ``keepalive_s``: a
    ``:`` comment after that many seconds without an event; ``seed``: the draws (splits, drops)."""

    batch: int = 1
    split: bool = False
    crlf: bool = False
    drop_every: int | None = None
    max_drops: int | None = None
    keepalive_s: float = 15.0
    seed: int = 0

    @property
    def eol(self) -> bytes:
        return b"\r\n" if self.crlf else b"\n"


def event_bytes(data: bytes, event_id: int | None, eol: bytes) -> bytes:
    """One SSE event: ``data:`` line(s), ``id:`` when given, a blank line. A line that starts with a space gets
    one more (a parser drops the first), so the data a client reads is exactly ``data``."""
    lines = data.splitlines() or [b""]
    out = b"".join((b"data: " if line[:1] == b" " else b"data:") + line + eol for line in lines)
    if event_id is not None:
        out += b"id:" + str(event_id).encode() + eol
    return out + eol


def pieces(payload: bytes, rng: random.Random, split: bool) -> list[bytes]:
    """``payload`` whole, or cut at 1..8 random boundaries (pieces of one byte included)."""
    if not split or len(payload) < 2:
        return [payload]
    cuts = sorted(rng.sample(range(1, len(payload)), min(len(payload) - 1, rng.randint(1, 8))))
    return [payload[a:b] for a, b in zip([0, *cuts], [*cuts, len(payload)], strict=True)]


def http_chunk(payload: bytes) -> bytes:
    """One HTTP/1.1 chunk of a chunked body."""
    return f"{len(payload):x}\r\n".encode() + payload + b"\r\n"
