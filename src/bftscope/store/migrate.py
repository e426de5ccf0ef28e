"""Versioned SQL migrations: numbered ``.sql`` files per dialect under ``migrations/<dialect>/``.

Each file runs once, in order, inside a transaction, and is recorded in ``schema_migrations``.
"""

from __future__ import annotations

import re
from importlib import resources
from typing import Any, Protocol

__all__ = ["apply_migrations", "migration_files"]

_NAME = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")


class _Connection(Protocol):
    def execute(self, sql: str, params: Any = ..., /) -> Any: ...


def migration_files(dialect: str) -> list[tuple[int, str, str]]:
    """``(version, file name, sql)`` for every migration of a dialect, in version order."""
    root = resources.files("bftscope.store").joinpath("migrations", dialect)
    out = []
    for entry in root.iterdir():
        m = _NAME.match(entry.name)
        if m:
            out.append((int(m.group(1)), entry.name, entry.read_text(encoding="utf-8")))
    out.sort()
    versions = [v for v, _, _ in out]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"duplicate migration versions for {dialect}: {versions}")
    return out


def apply_migrations(con: _Connection, dialect: str) -> list[int]:
    """Apply pending migrations; returns the versions applied now."""
    con.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name VARCHAR NOT NULL,"
        " applied_at TIMESTAMP NOT NULL DEFAULT current_timestamp)"
    )
    done = {row[0] for row in con.execute("SELECT version FROM schema_migrations").fetchall()}
    applied = []
    for version, name, sql in migration_files(dialect):
        if version in done:
            continue
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute(sql)
            con.execute("INSERT INTO schema_migrations (version, name) VALUES (?, ?)", [version, name])
            con.execute("COMMIT")
        except Exception:
            con.execute("ROLLBACK")
            raise
        applied.append(version)
    return applied
