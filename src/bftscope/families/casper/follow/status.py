"""What a Casper follower reports: per node, the casper-sidecar's ``node_statuses`` number and counters.

Numbers as the sidecar's gauge: 0 preparing (not started; or stopped), 1 connecting (never connected yet), 2 connected
(every channel past its handshake), 3 reconnecting (a channel lost its connection and is getting it back),
−1 defunct (a channel gave up: attempts used up), −2 incompatible (its ApiVersion cannot be followed). A node
that lost its connection is "reconnecting", never a node with "no events".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from bftscope.ingest.live import SourceState, SourceStats

__all__ = ["CONNECTED", "CONNECTING", "DEFUNCT", "INCOMPATIBLE", "PREPARING", "RECONNECTING", "STATE_NAMES",
           "CasperNodeStatus", "CasperStatus", "node_status"]  # fmt: skip

PREPARING, CONNECTING, CONNECTED, RECONNECTING, DEFUNCT, INCOMPATIBLE = 0, 1, 2, 3, -1, -2
STATE_NAMES = {PREPARING: "preparing", CONNECTING: "connecting", CONNECTED: "connected", RECONNECTING: "reconnecting",
               DEFUNCT: "defunct", INCOMPATIBLE: "incompatible"}  # fmt: skip

_STATUS_HELP = ("The node's status, as the casper-sidecar's node_statuses: 0 preparing, 1 connecting, 2 connected, "
                "3 reconnecting, -1 defunct, -2 incompatible")


def node_status(started: bool, incompatible: bool, channels: Sequence[SourceStats]) -> int:
    """The node's number from its channels' live-runner states."""
    if incompatible:
        return INCOMPATIBLE
    if not started or (channels and all(s.state == SourceState.STOPPED for s in channels)):
        return PREPARING
    if any(s.state == SourceState.FAILED for s in channels):
        return DEFUNCT
    if channels and all(s.state == SourceState.LIVE for s in channels):
        return CONNECTED
    if any(s.reconnects or s.last_error is not None for s in channels):
        return RECONNECTING
    return CONNECTING


@dataclass
class CasperNodeStatus:
    """One node: ``url`` as given (shown redacted by the API), ``label`` (host:port), ``status`` (above) and
    ``state`` (its name), the ApiVersion it answered, and counters since the follower started."""

    url: str
    label: str
    status: int = PREPARING
    state: str = "preparing"
    api_version: str | None = None
    events: int = 0
    frames: int = 0
    reconnects: int = 0
    errors: int = 0  # lost connections (each a reconnect, or the last one)
    bad_handshakes: int = 0  # connections whose first event was not ApiVersion
    shutdowns: int = 0  # Shutdown events the node sent
    skipped: dict[str, int] = field(default_factory=dict)  # the decoders' counts, by reason
    last_error: str | None = None
    last_ids: dict[str, int] = field(default_factory=dict)  # channel → the last event id seen
    channels: dict[str, str] = field(default_factory=dict)  # channel → live-runner state
    active: bool = False  # every channel connected


@dataclass
class CasperStatus:
    """A followed Casper network. ``height``: the highest block seen (the stalled-height alert reads it);
    ``round``/``committed`` are None (no rounds or vote outcomes: the vote alerts stay quiet); ``endpoints`` are
    the nodes, as the supervisor's endpoint alerts read them."""

    name: str
    nodes: list[CasperNodeStatus]
    events_total: int = 0
    height: int | None = None
    gaps: int = 0
    write_errors: int = 0
    listener_errors: int = 0
    round: None = None
    committed: None = None

    @property
    def endpoints(self) -> list[CasperNodeStatus]:
        return self.nodes

    def gauges(self) -> list[tuple[str, str, dict[str, str], float]]:
        """Per-node figures for ``/metrics``: (metric, help, labels without ``network``, value)."""
        out: list[tuple[str, str, dict[str, str], float]] = []
        for n in self.nodes:
            labels = {"node": n.label}
            out += [
                ("bftscope_casper_node_status", _STATUS_HELP, labels, float(n.status)),
                ("bftscope_casper_node_events", "Events received from the node since the follower started", labels,
                 float(n.events)),
                ("bftscope_casper_node_reconnects", "Reconnects to the node since the follower started", labels,
                 float(n.reconnects)),
                ("bftscope_casper_node_skipped", "Frames of the node the decoder skipped (bad input)", labels,
                 float(sum(n.skipped.values()))),
            ]  # fmt: skip
        return out

