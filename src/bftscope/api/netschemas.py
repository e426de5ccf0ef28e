"""The JSON shapes of ``/v1/networks``: followed networks, their status and their alert thresholds."""

from __future__ import annotations

from pydantic import Field

from bftscope.api.schemas import Model
from bftscope.control.networks import NAME_RULE

_NAME_DOC = ("1–63 letters, digits, '.', '_' or '-', starting with a letter or digit; unique (the network's "
             "events are the run 'net:<name>')")  # fmt: skip
_ENDPOINTS_DOC = ("RPC URLs (http, https, ws or wss), tried in order with failover; credentials in them "
                  "(user:pass@, query values) are used but only ever shown redacted")  # fmt: skip


class NetworkAlerts(Model):
    """Alert thresholds (docs/live.md "Alerts"). A field left out keeps the server's default; ``null`` turns
    the rule off."""

    missedVotes: int | None = Field(default=None, ge=1, le=1_000_000, description="consecutive missed votes")
    uptimePercent: float | None = Field(default=None, ge=0, le=100, description="uptime below this alerts")
    uptimeWindow: int | None = Field(default=None, ge=1, le=1_000_000, description="heights uptime is taken over")
    uptimeMinBlocks: int | None = Field(default=None, ge=1, le=1_000_000, description="known heights before judging")
    stalledSeconds: float | None = Field(default=None, ge=1, le=2_592_000, description="no new height for this long")
    roundEscalation: int | None = Field(default=None, ge=1, le=1000, description="a height reaching this round")
    endpointDownSeconds: float | None = Field(
        default=None, ge=1, le=2_592_000, description="an endpoint down this long"
    )


class NetworkCreate(Model):
    name: str = Field(pattern=NAME_RULE, description=_NAME_DOC)
    chain: str | None = Field(default=None, max_length=64, description="chain family; the default family when left out")
    endpoints: list[str] = Field(min_length=1, max_length=64, description=_ENDPOINTS_DOC)
    alerts: NetworkAlerts = Field(default_factory=NetworkAlerts)


class NetworkUpdate(Model):
    """Replaces what is given: the endpoint list (the follower restarts on it) and/or the alert overrides."""

    endpoints: list[str] | None = Field(default=None, min_length=1, max_length=64, description=_ENDPOINTS_DOC)
    alerts: NetworkAlerts | None = None


class EndpointStatus(Model):
    url: str = Field(description="redacted")
    state: str
    active: bool | None = None
    frames: int | None = None
    events: int | None = None
    reconnects: int | None = None
    errors: int | None = None
    lastError: str | None = Field(default=None, description="redacted")


class ActiveAlert(Model):
    rule: str
    subject: str
    since: float = Field(description="epoch seconds")
    value: float | None
    message: str


class NetworkStatus(Model):
    state: str = Field(description="starting | following | restarting | stopped | not_followed")
    error: str | None = Field(default=None, description="why the follower last failed (redacted)")
    restarts: int = 0
    height: int | None = None
    round: int | None = None
    step: str | None = None
    stepSince: float | None = Field(default=None, description="epoch seconds the step began")
    committed: int | None = Field(default=None, description="the last committed height observed or backfilled")
    nodeHeight: int | None = Field(default=None, description="the node's latest height (/status)")
    lag: int | None = Field(default=None, description="nodeHeight − height")
    gaps: int | None = None
    eventsTotal: int | None = None
    eventsPerSecond: float | None = None
    counters: dict[str, int] = Field(default_factory=dict, description="the follower's other counters (duplicates, "
                                     "backfilledHeights, notRefilledHeights, validatorErrors, writeErrors …)")
    endpoints: list[EndpointStatus] = Field(default_factory=list)
    alerts: list[ActiveAlert] = Field(default_factory=list)
    feedSubscribers: int = 0
    feedOverflows: int = Field(default=0, description="feed clients cut off for falling behind")


class Network(Model):
    id: str
    userId: str
    name: str
    chain: str
    run: str = Field(description="the run holding the network's events")
    endpoints: list[str] = Field(description="redacted")
    alerts: dict[str, float | None] = Field(description="the thresholds in force (null: rule off)")
    createdAt: str
    updatedAt: str
    status: NetworkStatus | None = Field(default=None, description="GET /v1/networks/{id} only")
