"""Settings: every knob of bftscope, read from ``BFTSCOPE_*`` environment variables.

Nothing reads the environment at import time; callers build a :class:`Settings` (the CLI does it once
per command, the API's app factory once per app) and pass it down.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["MEMORY_SIZE", "Settings"]


def _default_data_dir() -> Path:
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg) if xdg else Path.home() / ".local" / "share"
    return base / "bftscope"


MEMORY_SIZE = r"(?i)^\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)$"  # a DuckDB memory size, "300MB"


class Settings(BaseSettings):
    """Runtime configuration. Field docs are the reference for operators."""

    model_config = SettingsConfigDict(env_prefix="BFTSCOPE_", extra="ignore")

    data_dir: Path = Field(
        default_factory=_default_data_dir,
        description="Folder holding the embedded store (bftscope.duckdb) and uploads.",
    )
    query_timeout_s: float = Field(
        default=30.0, gt=0, description="Every store query is interrupted after this many seconds."
    )
    ingest_workers: int = Field(
        default=0, ge=0, description="Parser processes for ingest; 0 means one per CPU core."
    )
    ingest_batch_rows: int = Field(
        default=65_536, ge=1024, description="Rows per columnar batch handed from parsers to the writer."
    )
    max_line_bytes: int = Field(
        default=8 * 1024 * 1024,
        ge=4096,
        description="Log lines longer than this are skipped (counted as 'line too long'), never buffered whole.",
    )
    split_bytes: int = Field(
        default=64 * 1024 * 1024,
        ge=1024 * 1024,
        description="Line-oriented files larger than this are parsed in parallel ranges of about this size.",
    )
    duckdb_memory_limit: str = Field(
        default="1GB", pattern=MEMORY_SIZE, description="DuckDB memory_limit for the embedded store (queries, serving)."
    )
    ingest_parse_memory_limit: str = Field(
        default="300MB",
        pattern=MEMORY_SIZE,
        description="DuckDB memory_limit while an ingest's parser processes run: with two parsers (~200 MiB each) "
        "and the writer's own interpreter, the ingest stays under 1 GiB whatever the input size.",
    )
    ingest_derive_memory_limit: str = Field(
        default="700MB",
        pattern=MEMORY_SIZE,
        description="DuckDB memory_limit while an ingest builds the derived tables and rollups (parsers have exited).",
    )
    duckdb_threads: int = Field(default=0, ge=0, description="DuckDB worker threads; 0 means DuckDB's default.")
    duckdb_live_checkpoint: str = Field(
        default="128MB",
        pattern=MEMORY_SIZE,
        description="DuckDB's checkpoint_threshold (WAL size that starts a checkpoint) while a live writer runs "
        "(a followed Casper network): with DuckDB's 16MB, inserting 1.2 M events cost 22 us each, with 128MB "
        "9.8 (docs/casper.md \"Speed\").",
    )
    store_engine: str = Field(
        default="duckdb",
        validation_alias=AliasChoices("store_engine", "BFTSCOPE_STORE", "BFTSCOPE_STORE_ENGINE"),
        description="Storage engine (BFTSCOPE_STORE): 'duckdb', the embedded default, is the only one so far.",
    )

    # --- live runs: retention (docs/live.md "Retention") --------------------------------------------
    retention_raw_days: float = Field(
        default=7.0, gt=0, description="A live run keeps its events, and the rows derived from them, this many days."
    )
    retention_summary_days: float = Field(
        default=365.0, gt=0,
        description="A live run keeps its per-height summaries (validator history, …) this many days; at least "
        "the raw window.",
    )  # fmt: skip
    retention_interval_s: float = Field(
        default=600.0, gt=0, description="Seconds between two passes of the background pruner over the live runs."
    )
    retention_batch_heights: int = Field(
        default=1000, ge=1, description="Heights whose rows one pruning transaction removes (writes interleave)."
    )
    casper_retain_days: float = Field(
        default=7.0, gt=0, description="A Casper network keeps the entities (and their events) it first received "
        "within this many days (docs/casper.md \"Retention\").",
    )  # fmt: skip
    casper_retain_bytes: int = Field(
        default=2 * 1024**3, ge=0, description="A Casper network keeps at most this many bytes of node payloads: "
        "beyond it, its oldest entities go.",
    )  # fmt: skip

    # --- HTTP API (bftscope serve) ---------------------------------------------------------------
    host: str = Field(default="127.0.0.1", description="Address the API listens on.")
    port: int = Field(default=8080, ge=1, le=65535, description="Port the API listens on (the original's 8080).")
    workers: int = Field(
        default=1, ge=1, description="API server processes; the embedded store has one writer, so it must be 1."
    )
    auth_mode: Literal["token", "local"] = Field(
        default="token",
        description="'token': every request needs 'Authorization: Bearer <token>' (tokens come from creating a "
        "user). 'local': no tokens, every caller acts as a local admin, so the original frontend works unchanged on "
        "a workstation; refused unless the server listens on a loopback address.",
    )
    anonymous_bootstrap: bool = Field(
        default=True,
        description="Allow the one-time anonymous POST /v1/users that creates the first admin on a store where no "
        "user has ever existed. Set false to create admins only with 'bftscope users create NAME --admin'.",
    )
    cors_origins: list[str] = Field(
        default=["http://localhost:3000", "http://localhost:3001"],
        description="Browser origins allowed to call the API (exact match), as a JSON list.",
    )
    rate_limit_per_s: float = Field(default=100.0, gt=0, description="Sustained requests per second per client.")
    rate_limit_burst: int = Field(default=200, ge=1, description="Requests a client may make at once after idling.")
    rate_limit_enabled: bool = Field(default=True, description="Per-client token-bucket rate limit on or off.")
    trusted_proxies: list[str] = Field(
        default=[], description="Proxies (IPs or CIDRs) whose X-Forwarded-For/-Proto are believed, as a JSON list."
    )
    metrics_require_token: bool = Field(
        default=False,
        description="/metrics answers only requests with a valid API token (any user's; a scraper can have its own). "
        "Off by default: the server listens on loopback unless told otherwise.",
    )
    metrics_allowed_clients: list[str] = Field(
        default=[],
        description="If set, /metrics answers only these client addresses (IPs or CIDRs, as a JSON list; 403 for "
        "others). The client is the socket peer, or the X-Forwarded-For address from a trusted proxy.",
    )
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024, description="Largest JSON request body (413 above).")
    max_upload_file_bytes: int = Field(default=2 * 1024**3, ge=1024, description="Largest uploaded file (413).")
    max_upload_request_bytes: int = Field(
        default=8 * 1024**3, ge=1024, description="Largest upload request, all files together (413)."
    )
    max_archive_bytes: int = Field(
        default=20 * 1024**3, ge=1024,
        description="Largest expanded size of one uploaded archive: bytes written out (a sparse member's holes "
        "included) plus the inflated size of .gz files (413 at upload, failed processing).",
    )  # fmt: skip
    max_archive_member_bytes: int = Field(
        default=8 * 1024**3, ge=1024, description="Largest file inside an uploaded archive, or inflated .gz file."
    )
    max_archive_ratio: float = Field(
        default=200.0, gt=1, description="Largest expanded size / archive size (decompression bombs, 413)."
    )
    max_archive_members: int = Field(default=100_000, ge=1, description="Most entries in one uploaded archive.")
    hsts: bool = Field(default=True, description="Send Strict-Transport-Security on requests that came over TLS.")

    # --- followed networks and alerts (bftscope serve, bftscope watch) --------------------------
    follow_networks: bool = Field(
        default=True, description="bftscope serve follows every network of /v1/networks (false: resources only)."
    )
    casper_root_network: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$",
        description="Also serve this followed Casper network's REST routes at the root (/block/{hash}, /blocks, "
        "/deploy/{hash}, /accountDeploys/{account}, /sidecar/…), and its WebSocket (/blocks, /block/{hash}, …) and "
        "SSE (/events/main …) subscriptions, for the CasperLabs event-store's and the sidecar's clients: read-only "
        "and WITHOUT a token, as the event-store was, so anyone who can reach the server reads that network. "
        "Unset (the default): the root routes answer 404 and the network is served only under "
        "/v1/casper/{network}/ with a token (docs/casper.md \"REST\").",
    )
    network_max_endpoints: int = Field(default=8, ge=1, le=64, description="Most RPC endpoints per network.")
    networks_per_user: int = Field(default=20, ge=0, description="Most networks one user may have followed.")
    feed_queue_batches: int = Field(
        default=256, ge=1, description="Batches a feed websocket client may fall behind before it is disconnected."
    )
    # --- published events: subscriptions and several instances (docs/casper.md "Subscriptions") -----
    redis_url: SecretStr | None = Field(
        default=None,
        description="Share published events between API instances through this Redis (redis://[:password@]host:"
        "port/db); unset: in-process only. Shown and logged redacted.",
    )
    casper_follower_process: bool = Field(
        default=True, description="Read and decode a followed Casper network's node streams in a child process, "
        "so that the server's own process keeps its CPU for storing and publishing (docs/casper.md \"Followers\").",
    )  # fmt: skip
    casper_sse_buffer: int = Field(
        default=5000, ge=0, description="Recent events per Casper network kept in memory for SSE ?start_from= "
        "replay (the sidecar's event_stream_buffer_length); older ones are read from the store.",
    )  # fmt: skip
    casper_max_subscribers: int = Field(
        default=100, ge=1, description="Most SSE clients, and most WebSocket clients, per Casper network per instance "
        "(the sidecar's max_concurrent_subscribers; more are refused: 503, or WebSocket close 1013).",
    )  # fmt: skip
    casper_subscriber_queue: int = Field(
        default=10_000, ge=16, description="Messages a Casper WebSocket or SSE client may fall behind before it is "
        "disconnected (WebSocket close 1013; an SSE client reconnects with start_from).",
    )  # fmt: skip
    alert_webhook_url: SecretStr | None = Field(
        default=None, description="POST every alert that fires or clears to this URL as JSON (shown redacted)."
    )
    alert_webhook_timeout_s: float = Field(default=5.0, gt=0, description="Timeout of one webhook POST.")
    alert_webhook_retries: int = Field(default=3, ge=0, le=10, description="Retries of a failed webhook POST.")
    alert_missed_votes: int | None = Field(default=10, ge=1, description="Consecutive missed votes that alert.")
    alert_uptime_percent: float | None = Field(default=95.0, ge=0, le=100, description="Uptime below this alerts.")
    alert_uptime_window: int = Field(default=100, ge=1, description="Heights the uptime is measured over.")
    alert_uptime_min_blocks: int = Field(default=10, ge=1, description="Known heights before uptime is judged.")
    alert_stalled_s: float | None = Field(default=60.0, gt=0, description="Seconds without a new height that alert.")
    alert_round_escalation: int | None = Field(default=3, ge=1, description="A round this high (or higher) alerts.")
    alert_endpoint_down_s: float | None = Field(default=60.0, gt=0, description="Seconds an endpoint is down to alert.")

    @model_validator(mode="after")
    def _windows(self) -> Settings:
        if self.retention_summary_days < self.retention_raw_days:
            raise ValueError("retention_summary_days must be at least retention_raw_days")
        return self

    @field_validator("casper_root_network", mode="before")
    @classmethod
    def _unset_when_empty(cls, value: object) -> object:
        return None if value == "" else value  # BFTSCOPE_CASPER_ROOT_NETWORK= (set but empty) is off

    @field_validator("metrics_allowed_clients", "trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for entry in value:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(f"{entry!r} is not an IP address or CIDR block") from None
        return value

    @property
    def store_path(self) -> Path:
        return self.data_dir / "bftscope.duckdb"
