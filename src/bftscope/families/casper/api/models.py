"""The JSON shapes of the Casper REST routes, declared for the OpenAPI document.

The seed's shapes (CasperLabs event-store, camelCase) and the sidecar's (the node's own JSON, snake_case) are
kept exactly; the routes encode their answers themselves (orjson, or the stored raw bytes), so these models
document rather than convert. The cursor pages are bftscope's own.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["BlocksCursorPage", "BlocksPage", "DeployAggregate", "DeploysCursorPage", "DeploysPage", "PageLink",
           "SeedBlock", "SeedBlockDetail", "SeedDeploy", "SidecarBlock", "SidecarError", "SidecarPayload"]  # fmt: skip


class SeedBlock(BaseModel):
    """A block as the seed lists it (``/blocks``)."""

    blockHash: str
    parentHash: str
    timestamp: str = Field(description="the block's timestamp, ISO 8601 with milliseconds (2023-01-01T09:55:25.312Z)")
    eraId: int
    proposer: str
    state: Literal["added"] = Field(description="always 'added': bftscope sees blocks when they are added")
    height: int


class SeedBlockDetail(SeedBlock):
    """A block with its deploy and transfer hashes in block order (``/block/{hash}``)."""

    deploys: list[str]


class SeedDeploy(BaseModel):
    deployHash: str
    account: str | None
    state: Literal["accepted", "processed", "expired"] = Field(
        description="processed (in a block; a failed execution too), else expired, else accepted")
    cost: int | None = Field(description="the execution cost in motes, once processed")
    errorMessage: str | None
    blockHash: str | None


class PageLink(BaseModel):
    number: int
    url: str


class BlocksPage(BaseModel):
    """The seed's page envelope (express-paginate)."""

    data: list[SeedBlock]
    pageCount: int
    itemCount: int
    pages: list[PageLink]


class DeploysPage(BaseModel):
    data: list[SeedDeploy]
    pageCount: int
    itemCount: int
    pages: list[PageLink]


class BlocksCursorPage(BaseModel):
    """A keyset page (when the request has ``cursor``): pass ``next_cursor`` to get the next one."""

    data: list[SeedBlock]
    next_cursor: str | None


class DeploysCursorPage(BaseModel):
    data: list[SeedDeploy]
    next_cursor: str | None


class SidecarPayload(BaseModel):
    """The node's event JSON exactly as the node sent it (the value inside its type tag)."""

    model_config = ConfigDict(extra="allow")


class SidecarBlock(BaseModel):
    model_config = ConfigDict(extra="allow")
    block_hash: str
    block: dict[str, Any]


class DeployAggregate(BaseModel):
    """The sidecar's synthetic deploy view: what each of its events said."""

    deploy_hash: str
    deploy_accepted: dict[str, Any]
    deploy_processed: dict[str, Any] | None
    deploy_expired: bool


class SidecarError(BaseModel):
    code: int
    message: str
