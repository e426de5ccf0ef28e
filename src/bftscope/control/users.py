"""Users and their API tokens.

A token is 32 random bytes (URL-safe base64, prefixed ``bfts_`` so leaked tokens are easy to spot); only
its SHA-256 is stored. Tokens are high-entropy, so a fast unsalted hash is enough: nothing can be
guessed from it. The first user ever created is an admin; later users are not, unless an admin says so.
Deleting a user deletes their projects, simulations, files and tokens (:func:`delete_user`).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from typing import Any

from bftscope.control.records import User, new_id, now
from bftscope.errors import ConflictError, InputError, NotFoundError
from bftscope.store.base import Store

__all__ = ["create_user", "delete_user", "get_user", "issue_token", "list_users", "user_for_token", "validate_user"]

_COLS = "id, username, email, is_admin, created_at, updated_at"
RESERVED = frozenset({"admin", "root", "system", "api", "www", "mail", "ftp"})
BLOCKED_DOMAINS = frozenset({"example.com", "test.com", "invalid.com"})
_EMAIL = re.compile(r"^[a-zA-Z0-9._%+-]+@[a-zA-Z0-9.-]+\.[a-zA-Z]{2,}$")


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def validate_user(username: Any, email: Any) -> list[str]:
    """The original's validation messages, in its order; empty when valid."""
    details: list[str] = []
    if not isinstance(username, str) or not username:
        details.append("Username is required")
    elif len(username) < 3:
        details.append("Username must be at least 3 characters")
    elif len(username) > 30:
        details.append("Username must be at most 30 characters")
    elif not username.isascii() or not username.isalnum():
        details.append("Username must contain only alphanumeric characters")
    if not isinstance(email, str) or not email:
        details.append("Email is required")
    elif len(email) > 254 or not _EMAIL.match(email):
        details.append("Invalid email format")
    return details


def create_user(store: Store, username: str, email: str, *, is_admin: bool | None = None) -> tuple[User, str]:
    """Create a user and their first token; returns both (the token is shown once, never stored)."""
    details = validate_user(username, email)
    if details:
        raise InputError("Validation failed", details=details)
    if username.lower() in RESERVED:
        raise InputError("username is reserved")
    if email.rsplit("@", 1)[1].lower() in BLOCKED_DOMAINS:
        raise InputError("email domain is not allowed")
    taken = store.query("SELECT 1 FROM users WHERE lower(username) = lower(?) OR lower(email) = lower(?)",
                        [username, email])  # fmt: skip
    if taken:
        raise ConflictError("User with this username or email already exists")
    if is_admin is None:
        is_admin = not store.query("SELECT 1 FROM users LIMIT 1")
    t = now()
    user = User(new_id(), username, email, is_admin, t, t)
    store.execute("INSERT INTO users VALUES (?, ?, ?, ?, ?, ?)", [user.id, username, email, is_admin, t, t])
    return user, issue_token(store, user.id)


def issue_token(store: Store, user_id: str) -> str:
    token = "bfts_" + secrets.token_urlsafe(32)
    store.execute("INSERT INTO api_tokens VALUES (?, ?, ?, ?)", [_hash(token), user_id, token[:9], now()])
    return token


def user_for_token(store: Store, token: str) -> User | None:
    if not token.startswith("bfts_") or len(token) > 100:
        return None
    rows = store.query(
        f"SELECT {', '.join('u.' + c.strip() for c in _COLS.split(','))} FROM api_tokens t"
        " JOIN users u ON u.id = t.user_id WHERE t.token_hash = ?",
        [_hash(token)],
    )
    return User(*rows[0]) if rows else None


def get_user(store: Store, user_id: str) -> User:
    rows = store.query(f"SELECT {_COLS} FROM users WHERE id = ?", [user_id])
    if not rows:
        raise NotFoundError("User not found")
    return User(*rows[0])


def list_users(store: Store, only: str | None = None) -> list[User]:
    if only is not None:
        return [User(*r) for r in store.query(f"SELECT {_COLS} FROM users WHERE id = ?", [only])]
    return [User(*r) for r in store.query(f"SELECT {_COLS} FROM users ORDER BY created_at, id")]


def delete_user(store: Store, user_id: str, remove_simulation: Any) -> None:
    """Delete the user, their tokens and projects; ``remove_simulation(sim_id)`` removes each simulation's
    files and data (see :func:`bftscope.control.simulations.delete_simulation`)."""
    get_user(store, user_id)
    for (sim_id,) in store.query("SELECT id FROM simulations WHERE user_id = ?", [user_id]):
        remove_simulation(sim_id)
    store.execute("DELETE FROM projects WHERE user_id = ?", [user_id])
    store.execute("DELETE FROM api_tokens WHERE user_id = ?", [user_id])
    store.execute("DELETE FROM users WHERE id = ?", [user_id])
