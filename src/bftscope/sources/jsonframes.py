"""The simplest decoder: each frame is one JSON document (an SSE event's data, a websocket message).

Families with JSON streams (Casper SSE, CometBFT RPC, Substrate telemetry) start from it and map the
documents to their events; it is also the decoder the runner and replay tests use on real transcripts.
A frame that is not JSON is counted as skipped, never raised.
"""

from __future__ import annotations

from typing import Any

import msgspec

from bftscope.ingest.parsereport import ParseReport
from bftscope.sources.base import Frame

__all__ = ["JsonFrame", "JsonFrameDecoder"]


class JsonFrame(msgspec.Struct, frozen=True):
    """A decoded frame: its JSON document and where it came from in the stream."""

    doc: Any
    id: str | None
    event: str


class JsonFrameDecoder:
    def __init__(self) -> None:
        self.report = ParseReport()
        self._decode = msgspec.json.Decoder()

    def feed(self, frame: Frame) -> list[JsonFrame]:
        self.report.lines += 1
        self.report.bytes_read += len(frame.data)
        try:
            doc = self._decode.decode(frame.data)
        except msgspec.DecodeError:
            self.report.skip("not JSON", f"frame id {frame.id}", frame.data)
            return []
        self.report.events += 1
        return [JsonFrame(doc, frame.id, frame.event)]

    def finish(self) -> list[JsonFrame]:
        return []
