"""The response models of the Casper analytics routes (:mod:`.analytics_routes`): the answers of
:mod:`.analytics` as typed JSON, field for field (docs/casper.md "Analytics" defines each)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["BlockTimes", "Deploys", "Eras", "Proposers", "Signatures"]


class _Model(BaseModel):
    model_config = ConfigDict(populate_by_name=True)


class Window(_Model):
    from_: str | None = Field(alias="from", description="RFC 3339; None: open")
    to: str | None


class Stats(_Model):
    """Milliseconds: exact percentiles with linear interpolation; every figure None without samples."""

    count: int
    p50_ms: float | None
    p90_ms: float | None
    p99_ms: float | None
    mean_ms: float | None
    min_ms: float | None
    max_ms: float | None


class EraIntervals(_Model):
    era_id: int
    intervals: Stats


class BlockTimes(_Model):
    window: Window
    blocks: int
    first_height: int | None
    last_height: int | None
    missing_heights: int = Field(description="heights between the first and last not stored (not intervals)")
    intervals: Stats
    eras: list[EraIntervals]


class Weight(_Model):
    validator: str
    weight: str = Field(description="U512 as a decimal string")


class Era(_Model):
    era_id: int
    first_height: int
    last_height: int
    blocks: int
    missing_heights: int
    first_timestamp_ms: int
    last_timestamp_ms: int
    duration_ms: float
    intervals: Stats
    era_end: bool
    validators: list[Weight] | None = Field(description="None: the weights are unknown (weights_note)")
    validator_count: int | None
    total_weight: str | None
    weights_note: str | None
    faults: int
    equivocators: list[str] | None = Field(description="from the era's own era-end block; None without it")
    equivocator_count: int | None
    inactive_validator_count: int | None


class Eras(_Model):
    window: Window
    data: list[Era]


class ProposerRow(_Model):
    validator: str
    proposed: int
    proposed_share: float | None
    weight: str | None
    weight_share: float | None
    difference: float | None = Field(description="proposed_share − weight_share")
    expected: float | None
    z: float | None = Field(description="(proposed − expected) / √(n·p·(1 − p))")
    p_value: float | None = Field(description="two-sided, normal approximation")
    small_sample: bool | None = Field(description="n·p·(1 − p) < 5: the approximation is poor")
    note: str | None


class ProposerEra(_Model):
    era_id: int
    blocks: int
    weights_known: bool
    weights_note: str | None
    validators: list[ProposerRow]


class ProposerOverallRow(_Model):
    validator: str
    proposed: int
    proposed_share: float | None
    weight_share: float | None
    difference: float | None
    expected: float
    z: float | None
    p_value: float | None
    small_sample: bool


class ProposerOverall(_Model):
    blocks: int = Field(description="blocks of eras with known weights")
    blocks_without_weights: int
    validators: list[ProposerOverallRow]


class Proposers(_Model):
    window: Window
    eras: list[ProposerEra]
    overall: ProposerOverall


class NodeSeen(_Model):
    node: str
    blocks_seen: int


class SignatureRow(_Model):
    validator: str
    node: str | None = Field(description="None: over all nodes (first receipt anywhere − first sight anywhere)")
    signatures: int
    before_block: int = Field(description="received before the block (negative delays)")
    block_not_seen: int = Field(description="received by a node that never received the block: no delay")
    delay: Stats
    due: int | None = Field(description="blocks of the validator's eras with weights (seen by the node)")
    missing: int | None = Field(description="of those, signatures never received; None: no known weight")


class Signatures(_Model):
    window: Window
    blocks: int
    blocks_without_weights: int
    nodes: list[NodeSeen]
    validators: list[SignatureRow]
    per_node: list[SignatureRow]


class ErrorCount(_Model):
    error_message: str
    count: int


class _DeployCounts(_Model):
    accepted: int
    processed: int
    failed: int
    failure_rate: float | None
    expired: int
    pending: int = Field(description="accepted, neither processed nor expired")
    processed_without_accepted: int
    block_not_stored: int
    inclusion: Stats = Field(description="processed block timestamp − deploy timestamp")
    receipt: Stats = Field(description="first receipt of DeployProcessed − of DeployAccepted (this machine)")


class AccountDeploys(_DeployCounts):
    account: str


class Deploys(_DeployCounts):
    window: Window
    errors: list[ErrorCount]
    accounts: list[AccountDeploys] | None = None
