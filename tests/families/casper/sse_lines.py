"""A small SSE reader for the tests: (id, data, comment) of each event of a streaming httpx response."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx

__all__ = ["Event", "events"]


@dataclass
class Event:
    id: int | None
    data: str
    comment: bool = False


def events(response: httpx.Response) -> Iterator[Event]:
    data: list[str] = []
    event_id: int | None = None
    comment = False
    for line in response.iter_lines():
        if line == "":
            if data or comment:
                yield Event(event_id, "\n".join(data), comment and not data)
            data, event_id, comment = [], None, False
        elif line.startswith(":"):
            comment = True
        elif line.startswith("data:"):
            data.append(line[5:])
        elif line.startswith("id:"):
            event_id = int(line[3:])
