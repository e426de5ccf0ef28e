"""Users and their API tokens, and the one-time bootstrap of the first admin.

A token is 32 random bytes (URL-safe base64, prefixed ``bfts_`` so leaked tokens are easy to spot); only
its SHA-256 is stored. Tokens are high-entropy, so a fast unsalted hash is enough: nothing can be
guessed from it. Deleting a user deletes their projects, simulations, files and tokens (:func:`delete_user`).

The bootstrap: on a store where no user has ever existed, one anonymous caller may create the first user,
who becomes an admin (:func:`create_first_admin`). The check and the insert run in one store transaction,
so concurrent callers get exactly one admin; and the first insert of any user records ``bootstrapped`` in
``control_state``, so the bootstrap stays closed even if every user is later deleted. Operators who would
rather not expose it at all create admins with ``bftscope users create NAME --admin`` and set
``BFTSCOPE_ANONYMOUS_BOOTSTRAP=false``. The last admin cannot be deleted, so an admin always exists.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from typing import Any

from bftscope.control.records import User, new_id, now
from bftscope.errors import ConflictError, InputError, NotFoundError, UnauthorizedError
from bftscope.store.base import Store

__all__ = ["bootstrap_open", "create_first_admin", "create_user", "delete_user", "ensure_local_user", "get_user",
           "issue_token", "list_users", "user_for_token", "validate_user"]  # fmt: skip

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
    elif len(email) > 254 or not _EMAIL.fullmatch(email):
        details.append("Invalid email format")
    return details


def _check_new(username: str, email: str) -> None:
    details = validate_user(username, email)
    if details:
        raise InputError("Validation failed", details=details)
    if username.lower() in RESERVED:
        raise InputError("username is reserved")
    if email.rsplit("@", 1)[1].lower() in BLOCKED_DOMAINS:
        raise InputError("email domain is not allowed")


def _bootstrapped(store: Store) -> bool:
    """Whether any user has ever existed (read on the writer's connection: call inside a transaction)."""
    return bool(store.execute("SELECT 1 FROM control_state WHERE key = 'bootstrapped'"))


def _insert(store: Store, user: User) -> None:
    """Insert a user inside the caller's transaction, refusing a taken name and closing the bootstrap."""
    taken = store.execute("SELECT 1 FROM users WHERE lower(username) = lower(?) OR lower(email) = lower(?)",
                          [user.username, user.email])  # fmt: skip
    if taken:
        raise ConflictError("User with this username or email already exists")
    store.execute("INSERT INTO users VALUES (?, ?, ?, ?, ?, ?)",
                  [user.id, user.username, user.email, user.is_admin, user.created_at, user.updated_at])  # fmt: skip
    store.execute("INSERT INTO control_state VALUES ('bootstrapped', 'true', ?) ON CONFLICT DO NOTHING", [now()])


def bootstrap_open(store: Store) -> bool:
    """True while no user has ever existed: an anonymous caller may still create the first admin."""
    return not store.query("SELECT 1 FROM control_state WHERE key = 'bootstrapped'")


def create_first_admin(store: Store, username: str, email: str) -> tuple[User, str]:
    """The anonymous bootstrap: create the first user ever, as an admin, with a token.

    Raises :class:`UnauthorizedError` once any user has existed — the same answer as any anonymous call to a
    route that needs a token, so it tells a caller nothing it could not learn otherwise.
    """
    _check_new(username, email)
    t = now()
    user = User(new_id(), username, email, True, t, t)
    with store.transaction():
        if _bootstrapped(store):
            raise UnauthorizedError("missing API token: only an admin may create users")
        _insert(store, user)
        return user, issue_token(store, user.id)


def create_user(store: Store, username: str, email: str, *, is_admin: bool = False) -> tuple[User, str]:
    """Create a user and their first token; returns both (the token is shown once, never stored). The
    caller decides who may do this (an admin over the API, the operator on the command line)."""
    _check_new(username, email)
    t = now()
    user = User(new_id(), username, email, is_admin, t, t)
    with store.transaction():
        _insert(store, user)
        return user, issue_token(store, user.id)


def ensure_local_user(store: Store, user_id: str) -> None:
    """Local mode only: create the original frontend's hard-wired user id on first use (not an admin)."""
    name = f"local{user_id}"
    t = now()
    with store.transaction():
        if not store.execute("SELECT 1 FROM users WHERE id = ?", [user_id]):
            _insert(store, User(user_id, name, f"{name}@localhost.localdomain", False, t, t))


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
    files and data (see :func:`bftscope.control.simulations.delete_simulation`).

    The last admin is refused (409): without an admin nobody could create users again, and the bootstrap
    never reopens. The check and the deletion of the user's row are one transaction, so two admins deleting
    each other at once cannot both succeed.
    """
    get_user(store, user_id)
    with store.transaction():
        rows = store.execute("SELECT is_admin, (SELECT count(*) FROM users WHERE is_admin) FROM users WHERE id = ?",
                             [user_id])  # fmt: skip
        if not rows:
            raise NotFoundError("User not found")
        if rows[0][0] and rows[0][1] <= 1:
            raise ConflictError("the last admin cannot be deleted; make another user an admin first")
        store.execute("DELETE FROM api_tokens WHERE user_id = ?", [user_id])
        store.execute("DELETE FROM users WHERE id = ?", [user_id])
    # the user and their tokens are gone, so nothing new can be added; now remove what they owned
    for (sim_id,) in store.query("SELECT id FROM simulations WHERE user_id = ?", [user_id]):
        remove_simulation(sim_id)
    store.execute("DELETE FROM projects WHERE user_id = ?", [user_id])
