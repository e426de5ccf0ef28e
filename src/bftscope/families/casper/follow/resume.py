"""Where following a Casper run again starts: each node channel's last event id the run holds, so ``bftscope
watch`` run twice (or a server restarted) asks every node ``?start_from=<that id>`` — what the node still
buffers since then is received, and the store keeps each event and entity once."""

from __future__ import annotations

from bftscope.store.base import Store

__all__ = ["last_event_ids"]


def last_event_ids(store: Store, run_id: int) -> dict[tuple[str, str], int]:
    """(node label, channel) → the id of the last event stored from it (the latest received)."""
    last = store.dialect.arg_max("event_id", "received_ns")
    rows = store.query(
        f"SELECT source, channel, {last} FROM casper_event_log WHERE run_id = ? AND event_id >= 0 "
        "GROUP BY source, channel",
        [run_id],
    )
    return {(str(s), str(c)): int(i) for s, c, i in rows}
