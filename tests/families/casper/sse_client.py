"""Test helpers: read a replayed node's channel as a follower's decoder sees it, and the real payloads."""

from __future__ import annotations

import json
from collections.abc import Sequence

from bftscope.families.casper.decoder import CasperDecoder
from bftscope.families.casper.model import CasperEvent
from bftscope.sources.sse import SSETransport
from tests.conftest import require_data

__all__ = ["END", "decoded", "read_until", "real_payloads"]

END = b'{"EndOfTest":{}}'  # a type no channel names: a replay node sends it on every channel


async def read_until(url: str, end: bytes = END, start_from: str | None = "0") -> list[CasperEvent | bytes]:
    """Every frame of one connection up to the ``end`` payload: decoded events, and the raw data of frames the
    decoder skipped (so nothing is lost from a comparison)."""
    t = SSETransport(url, resume_param="start_from", idle_timeout=20)
    decoder = CasperDecoder("node", url.rsplit("/", 1)[-1], clock=lambda: 0)
    out: list[CasperEvent | bytes] = []
    await t.open(start_from)
    try:
        while True:
            frame = await t.receive()
            if frame.data == end:
                return out
            events = decoder.feed(frame)
            out.extend(events if events else [frame.data])
    finally:
        await t.close()


def decoded(items: Sequence[CasperEvent | bytes]) -> list[tuple[object, ...]]:
    """What a comparison looks at: type, key, id, fields and raw bytes of each event (raw bytes of a skipped one)."""
    return [(e.type, e.key, e.event_id, json.dumps(e.fields, sort_keys=True), e.raw)
            if isinstance(e, CasperEvent) else ("skipped", e) for e in items]  # fmt: skip


def real_payloads() -> list[bytes]:
    """The ``data`` of every real event: the fixtures (pretty-printed, as stored) and the transcripts' frames."""
    from bftscope.sources.sse import SSEParser

    folder = require_data("casper-sse")
    out = [p.read_bytes() for p in sorted(folder.glob("casper-docs_node-events_*.json"))]
    out += [p.read_bytes() for p in sorted((folder / "sidecar_legacy_fixtures").glob("*.json"))]
    for p in sorted(folder.glob("*.sse")):
        out += [f.data for f in SSEParser().feed(p.read_bytes() + b"\n\n")]
    return out
