"""The control plane's records and the helpers every control module shares (ids, clock, row mapping)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime

__all__ = ["Project", "SimFile", "Simulation", "User", "new_id", "now", "valid_id"]

_HEX = frozenset("0123456789abcdef")


def new_id() -> str:
    """24 lower-case hex characters: the shape of the original's ObjectIDs, so its clients accept them."""
    return secrets.token_hex(12)


def valid_id(value: str) -> bool:
    return len(value) == 24 and set(value) <= _HEX


def now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


@dataclass
class User:
    id: str
    username: str
    email: str
    is_admin: bool
    created_at: datetime
    updated_at: datetime


@dataclass
class Project:
    id: str
    user_id: str
    name: str
    description: str
    created_at: datetime
    updated_at: datetime


@dataclass
class SimFile:
    stored_name: str
    original_filename: str
    size: int
    sha256: str
    uploaded_at: datetime


@dataclass
class Simulation:
    id: str
    project_id: str
    user_id: str
    name: str
    description: str
    status: str
    processing_status: str | None
    processed_files: int | None
    total_files: int | None
    processing_ms: int | None
    progress: float | None
    error_message: str | None
    processed_at: datetime | None
    created_at: datetime
    updated_at: datetime
    files: list[SimFile] = field(default_factory=list)

    @property
    def run_name(self) -> str:
        return f"sim-{self.id}"
