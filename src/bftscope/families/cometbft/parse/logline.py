"""The shapes of a CometBFT log line that the parsers decode into: :class:`LogLine` (every key any
handler reads) and :class:`HotLine` (only the keys of the busiest messages, cheaper to decode).

Kept apart from :mod:`.logmsgs` (which maps them to events) so each module stays small.
"""

from __future__ import annotations

from typing import Any

import msgspec

__all__ = ["HotLine", "LogLine", "Packet"]


class Packet(msgspec.Struct, gc=False):
    """The ``packet`` object of ``Read PacketMsg`` lines."""

    channel_id: Any = None
    eof: Any = None
    data: Any = None


class LogLine(msgspec.Struct, frozen=False, gc=False):
    """The keys of CometBFT log lines that we read. Unknown keys are ignored while decoding.

    Fields are in byte order of their JSON names, the order in which CometBFT writes a line's keys:
    msgspec looks a key up by scanning the fields from the one after the previous match, so with
    the same order each lookup is a hit at once. ``gc=False``: decoded values are trees and never
    form reference cycles, so the collector need not track the millions of instances.
    """

    ID: Any = None
    msg: Any = msgspec.field(default=None, name="_msg")
    addr: Any = None
    block: Any = None
    chID: Any = None
    chId: Any = None
    channel: Any = None
    commit_round: Any = None
    count: Any = None
    cs_height: Any = None
    current: Any = None
    dur: Any = None
    from_: Any = msgspec.field(default=None, name="from")
    hash: Any = None
    height: Any = None
    index: Any = None
    last_commit: Any = None
    msg_: Any = msgspec.field(default=None, name="msg")
    msgBytes: Any = None
    nodeInfo: Any = None
    num_txs: Any = None
    num_valid_txs: Any = None
    packet: Packet | None = None
    peer: Any = None
    pol_round: Any = None
    previous: Any = None
    prevotes: Any = None
    proposal: Any = None
    proposer: Any = None
    pubKey: Any = None
    round: Any = None
    software: Any = None
    src: Any = None
    step: Any = None
    total: Any = None
    ts: Any = None
    txs: Any = None
    val_index: Any = None
    validTxs: Any = None
    valid_round: Any = None
    validator: Any = None
    vote: Any = None
    vote_height: Any = None
    vote_timestamp: Any = None
    vote_type: Any = None


class HotLine(msgspec.Struct, gc=False):
    """A line of one of the busiest messages (Send, TrySend, Received bytes, Receive, Read PacketMsg)
    with only the keys their handlers read: decoding builds 10 fields instead of LogLine's 45, and
    skips the others (``conn``, ``level``, ``module`` …) without building them — about 40% cheaper.

    For those messages it gives exactly what LogLine would: their handlers read only these fields,
    decoded the same way. A line whose message turns out not to be one of them (the parser only
    guesses from the line's first bytes) is decoded again as a LogLine. Fields are in byte order,
    as in LogLine.
    """

    msg: Any = msgspec.field(default=None, name="_msg")
    chID: Any = None
    chId: Any = None
    channel: Any = None
    msg_: Any = msgspec.field(default=None, name="msg")
    msgBytes: Any = None
    packet: Packet | None = None
    peer: Any = None
    src: Any = None
    ts: Any = None
