"""The control plane's records and the helpers every control module shares (ids, clock, row mapping)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from bftscope.control.text import check_description, check_name
from bftscope.errors import InputError
from bftscope.store.base import Store

__all__ = ["Project", "SimFile", "Simulation", "User", "check_text", "new_id", "now", "set_text", "valid_id"]

MAX_NAME = 200
MAX_DESCRIPTION = 10_000

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


def check_text(name: str | None, description: str | None) -> None:
    """The name/description rules shared by projects and simulations (None = not being set)."""
    if name is not None and not name.strip():
        raise InputError("name is required")
    if name is not None and len(name) > MAX_NAME:
        raise InputError(f"name must have at most {MAX_NAME} characters")
    if description is not None and len(description) > MAX_DESCRIPTION:
        raise InputError(f"description must have at most {MAX_DESCRIPTION} characters")
    if name is not None:
        check_name(name)
    if description is not None:
        check_description(description)


def set_text(store: Store, table: Literal["projects", "simulations"], row_id: str, name: str | None,
             description: str | None) -> None:  # fmt: skip
    """Change only the fields given (and always ``updated_at``)."""
    check_text(name, description)
    store.execute(
        f"UPDATE {table} SET name = coalesce(?, name), description = coalesce(?, description), updated_at = ?"
        " WHERE id = ?",
        [name, description, now(), row_id],
    )
