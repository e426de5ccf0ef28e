"""The JSON shapes of the HTTP API (Pydantic models, camelCase like the original's JSON).

Resource shapes follow ``shared/reference/cometbft-analyzer.md`` §1.4 so the existing frontend works
unchanged; where bftscope adds a field it says so. ``filePath`` in ``logFiles`` is the file's name inside
the simulation's upload folder, never a server path.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from bftscope.control.text import description_problem, name_problem
from bftscope.errors import ERROR_CODES


def _name(value: str) -> str:
    problem = name_problem(value)
    if problem:
        raise ValueError(problem)
    return value


def _description(value: str) -> str:
    problem = description_problem(value)
    if problem:
        raise ValueError(problem)
    return value


# names and descriptions refused at the edge with the same rule the control plane applies (bftscope.control.text)
Name = Annotated[str, AfterValidator(_name)]
Description = Annotated[str, AfterValidator(_description)]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorBody(BaseModel):
    model_config = ConfigDict(extra="allow")
    error: str
    code: str = Field(json_schema_extra={"enum": list(ERROR_CODES)}, description="stable machine-readable code")
    details: Any = None
    retry_after: int | None = None


class Message(Model):
    message: str


class UserCreate(Model):
    username: str = Field(min_length=3, max_length=30, pattern=r"^[A-Za-z0-9]+$",
                          description="3–30 letters or digits; admin, root, system, api, www, mail, ftp are reserved")
    email: str = Field(max_length=254, pattern=r"^[a-zA-Z0-9._%+-]+@[a-zA-Z0-9.-]+\.[a-zA-Z]{2,}$",
                       description="example.com, test.com and invalid.com are refused")


class User(Model):
    id: str
    username: str
    email: str
    isAdmin: bool = Field(description="bftscope: admins may read and change everything")
    createdAt: str
    updatedAt: str


class UserCreated(User):
    token: str = Field(description="bftscope: the user's first API token, shown once (send as 'Authorization: Bearer')")


_NAME_DOC = "no control, invisible or formatting characters (NUL, bidi overrides, zero-width, line breaks)"


class ProjectCreate(Model):
    name: Name = Field(min_length=1, max_length=200, pattern=r"\S", description=_NAME_DOC)
    description: Description = Field(default="", max_length=10_000)


class ProjectUpdate(Model):
    name: Name | None = Field(default=None, min_length=1, max_length=200, pattern=r"\S", description=_NAME_DOC)
    description: Description | None = Field(default=None, max_length=10_000)


class Project(Model):
    id: str
    name: str
    description: str
    userId: str
    createdAt: str
    updatedAt: str


class SimulationCreate(Model):
    name: Name = Field(min_length=1, max_length=200, pattern=r"\S", description=_NAME_DOC)
    description: Description = Field(default="", max_length=10_000)


class LogFile(Model):
    originalFilename: str
    filePath: str
    fileSize: int
    uploadedAt: str
    sha256: str


class ProcessingResult(Model):
    processedFiles: int
    totalFiles: int
    processingTime: int = Field(description="milliseconds")
    errorMessage: str | None = None
    processedAt: str


class Simulation(Model):
    id: str
    name: str
    description: str
    projectId: str
    userId: str
    logFiles: list[LogFile]
    status: str
    processingStatus: str | None = None
    processingResult: ProcessingResult | None = None
    progress: float | None = Field(default=None, description="bftscope: 0..1 while processing")
    createdAt: str
    updatedAt: str


class DuplicateFile(Model):
    originalFilename: str = Field(description="the file that was not kept")
    sameAs: str = Field(description="filePath of the stored file with the same bytes (SHA-256)")


class SkippedMember(Model):
    filePath: str = Field(description="the uploaded archive")
    member: str = Field(description="the entry's name inside the archive")
    reason: str


_DUPLICATES = "files not kept because the same bytes are already stored (they would double their events)"
_SKIPPED = "archive entries that will not be extracted (links, devices, unsafe paths, clashes) and why"


class SimulationCreated(Simulation):
    """A simulation just created from a multipart body: the simulation plus what its upload left out."""

    duplicates: list[DuplicateFile] = Field(default_factory=list, description=_DUPLICATES)
    skippedMembers: list[SkippedMember] = Field(default_factory=list, description=_SKIPPED)


class UploadResponse(Model):
    message: str
    uploadedFiles: int
    totalFiles: int
    uploadedFileNames: list[str]
    duplicates: list[DuplicateFile] = Field(default_factory=list, description=_DUPLICATES)
    skippedMembers: list[SkippedMember] = Field(default_factory=list, description=_SKIPPED)


class ProcessResponse(Model):
    message: str
    simulationId: str
    status: str


class EventsPagination(Model):
    limit: int
    hasNext: bool
    hasPrevious: bool
    nextCursor: str | None
    previousCursor: str | None
    totalCount: int | None


class EventsPage(Model):
    data: list[dict[str, Any]]
    pagination: EventsPagination


# --- the original's metrics (the CometBFT family's analyzer) ---------------------------------------------


class VoteLatencyRow(Model):
    height: int | None
    round: int | None
    type: str | None
    validatorIndex: int | None
    sender: str
    receiver: str
    sentTime: str
    receivedTime: str
    latencyMs: float


class PagePagination(Model):
    page: int
    perPage: int
    total: int
    totalPages: int


class VoteLatencyPage(Model):
    data: list[VoteLatencyRow]
    pagination: PagePagination


class PairwiseRow(Model):
    sender: str
    receiver: str
    p50Ms: float
    p95Ms: float
    p99Ms: float
    count: int


class VoteStatRow(Model):
    sender: str
    receiver: str
    voteType: str | None
    count: int
    p50: float
    p90: float
    p95: float
    p99: float
    max: float
    spikePerc: float


class TimeseriesRow(Model):
    height: int | None
    sender: str
    receiver: str
    latencyMs: float
    maxMs: float
    count: int


class HistogramBucket(Model):
    lower: float
    upper: float
    count: int


class JitterRow(Model):
    sender: str
    receiver: str
    stdDevMs: float | None
    count: int


class LatencyStats(Model):
    histogram: list[HistogramBucket]
    jitter: list[JitterRow]


class SuccessRow(Model):
    height: int | None
    sender: str
    receiver: str
    sentCount: int
    recvCount: int
    successRate: float


class EndToEndRow(Model):
    height: int | None
    p50Ms: float
    p95Ms: float
    nodes: int
    maxMs: float


class LatencyHistogram(Model):
    nodePairKey: str
    node1Id: str
    node2Id: str
    messageType: str
    node1Validator: str
    node2Validator: str
    latenciesMs: list[float]
    count: int
    minLatencyMs: float
    maxLatencyMs: float
    meanLatencyMs: float
    medianLatencyMs: float
    p95LatencyMs: float
    p99LatencyMs: float
    firstSeen: str
    lastSeen: str
    belowP50Count: int
    p50ToP95Count: int
    p95ToP99Count: int
    aboveP99Count: int
    node1ToNode2MedianMs: float | None
    node2ToNode1MedianMs: float | None


class NodePairStats(Model):
    nodePairKey: str
    node1Id: str
    node2Id: str
    node1Validator: str
    node2Validator: str
    messageTypes: dict[str, LatencyHistogram]
    overallStats: LatencyHistogram | None


class NodeStats(Model):
    nodeId: str
    validatorAddress: str
    totalSends: int
    totalReceives: int
    unmatchedSends: int
    unmatchedReceives: int
    successfulMatches: int
    matchSuccessRate: float | None
    connectedPeers: list[str]
    peerCount: int


class OverallStats(Model):
    count: int
    p50ToP95Count: int
    weightedAvgP95Ms: float
    p50Ms: float | None
    p95Ms: float | None
    p99Ms: float | None


class TopType(Model):
    messageType: str
    latencyMs: float


class TopNode(Model):
    nodeId: str
    latencyMs: float


class Overview(Model):
    overallStats: OverallStats
    overallWeightedAvgP95LatencyMs: float
    overallP95LatencyMs: float
    messageTypeWithHighestAvgP95: TopType
    nodeWithHighestAvgP95: TopNode
    messageTypeLatency: dict[str, float]
    nodeLatencyContribution: dict[str, float]


# --- bftscope's own answers ----------------------------------------------------------------------------


class NodeInfo(Model):
    node: int
    label: str
    nodeId: str | None
    validatorAddress: str | None
    events: int
    firstHeight: int | None
    lastHeight: int | None
    nodeIdSources: list[str] = []  # where nodeId came from (stated, or inferred: docs/event-model.md)
    identityConflicts: list[str] = []  # sources that disagreed on it, reported rather than settled silently


class RunSummary(Model):
    simulationId: str
    status: str
    events: int
    firstTimestamp: str | None
    lastTimestamp: str | None
    firstHeight: int | None
    lastHeight: int | None
    nodes: list[NodeInfo]
    eventsByKind: dict[str, int]


class Table(Model):
    """A list of rows; each row's fields are documented in docs/metrics.md."""

    model_config = ConfigDict(extra="forbid")
    data: list[dict[str, Any]]


class Participation(Model):
    validators: dict[str, dict[str, Any]]
    missed: list[dict[str, Any]]
    late: list[dict[str, Any]]
    edge: list[dict[str, Any]]


class TopologyPair(Model):
    a: str
    b: str
    hops: int | None  # 1: directly connected; 2+: relayed; None: no path seen


class Topology(Model):
    """Direct links between a run's nodes (families/cometbft/analytics/topology.py)."""

    nodes: list[str]
    edges: list[list[str]]  # undirected [labelA, labelB]
    source: str | None  # observed messages, or configured peers when nothing was observed
    shape: str  # full mesh, star, line, ring, split, partial mesh, unknown, single node
    description: str
    pairs: list[TopologyPair]
    outside_peers: int  # peer ids seen that belong to no node of the run
    unidentified_nodes: list[str]  # nodes without a p2p id: their links cannot be seen


class Timeline(Model):
    heights: list[dict[str, Any]]
    extraRounds: list[dict[str, Any]]
    stepDurations: list[dict[str, Any]]


class Comparison(Model):
    verdicts: list[str]
    changes: list[dict[str, Any]]
    a: dict[str, Any] | None = None
    b: dict[str, Any] | None = None
