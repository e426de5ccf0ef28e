"""The ``/events`` page's cursors, and which family renders a run's events.

Cursors are opaque ``c_<ns>_<id>`` strings naming the last (or first) event returned; pages continue
strictly after ``(timestamp, id)``, so following ``nextCursor`` never repeats or skips an event however
many share a timestamp. For the original's clients an RFC 3339 time is accepted as a cursor too
(``cursor=T``: events after T; ``before=T``: the page just before T). How each entry is rendered is the
run's chain family's (:meth:`~bftscope.families.base.ChainFamily.events`).
"""

from __future__ import annotations

from bftscope.errors import InputError
from bftscope.families import registry
from bftscope.families.base import EventRenderer
from bftscope.store.base import Store
from bftscope.timeutil import parse_rfc3339_ns

__all__ = ["DELIVERY_ID", "MAX_ID", "decode_cursor", "encode_cursor", "renderer"]

MAX_ID = 2**62
# Deliveries' ids: the matched receive event's id + 2**52, above every event id of a run and below 2**53, so a
# JavaScript client reads it exactly.
DELIVERY_ID = 2**52


def encode_cursor(ts: int, event_id: int) -> str:
    return f"c_{ts}_{event_id}"


def decode_cursor(text: str, what: str, *, after: bool) -> tuple[int, int]:
    """An opaque cursor, or an RFC 3339 time (after it: every event at that time is passed)."""
    if text.startswith("c_"):
        try:
            ts, event_id = (int(x) for x in text[2:].split("_"))
        except ValueError:
            raise InputError(f"invalid {what} format, use the cursor returned by the API or RFC3339") from None
        if not (abs(ts) < 2**63 and abs(event_id) < 2**63):  # the columns are 64-bit: a 500 in the query
            raise InputError(f"{what} is out of range: use the cursor returned by the API")
        return ts, event_id
    try:
        return parse_rfc3339_ns(text), MAX_ID if after else -1
    except ValueError:
        raise InputError(f"invalid {what} format, use the cursor returned by the API or RFC3339") from None


def renderer(store: Store, run_id: int) -> EventRenderer:
    """The renderer of the run's chain family."""
    return registry.family_of_run(store, run_id).events()
