"""Networks: live chains a user has the server follow, owned like projects.

A network has a name, a chain family, RPC endpoints (tried in order, failing over) and alert thresholds
(overrides of :class:`bftscope.live.alerts.Thresholds`). Its events are the run ``net:<name>``, so names
are unique across users and restricted to what is safe in a run name, a log line and a Prometheus label.
Endpoints are stored as given — credentials in them are needed to connect — and shown only redacted
(:func:`bftscope.live.endpoints.redact_url`). Deleting a network deletes its run's data.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bftscope.control.records import new_id, now
from bftscope.errors import ConflictError, InputError, NotFoundError
from bftscope.live.alerts import thresholds
from bftscope.live.endpoints import check_endpoint
from bftscope.store.base import Store

__all__ = ["NAME_RULE", "Network", "count_networks", "create_network", "delete_network", "get_network",
           "list_networks", "network_named", "run_id_of", "run_name", "stored_events", "update_network"]  # fmt: skip

NAME_RULE = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$"
_NAME = re.compile(NAME_RULE)
_COLS = "id, user_id, name, chain, endpoints, alerts, created_at, updated_at"


@dataclass
class Network:
    id: str
    user_id: str
    name: str
    chain: str
    endpoints: list[str]
    alerts: dict[str, Any]  # the owner's overrides, in the API's spelling
    created_at: datetime
    updated_at: datetime

    @property
    def run_name(self) -> str:
        return run_name(self.name)


def run_name(name: str) -> str:
    return f"net:{name}"


def _row(r: tuple[Any, ...]) -> Network:
    return Network(r[0], r[1], r[2], r[3], json.loads(r[4]), json.loads(r[5]), r[6], r[7])


def check_endpoints(endpoints: list[str], max_endpoints: int) -> list[str]:
    if not endpoints:
        raise InputError("endpoints: give at least one RPC URL")
    if len(endpoints) > max_endpoints:
        raise InputError(f"endpoints: at most {max_endpoints} per network")
    if len(set(endpoints)) != len(endpoints):
        raise InputError("endpoints: the same URL is given twice")
    return [check_endpoint(u) for u in endpoints]


def create_network(store: Store, user_id: str, name: str, chain: str, endpoints: list[str], alerts: dict[str, Any],
                   *, max_endpoints: int, max_per_user: int) -> Network:  # fmt: skip
    if not _NAME.match(name):
        raise InputError("name: 1–63 letters, digits, '.', '_' or '-', starting with a letter or digit")
    check_endpoints(endpoints, max_endpoints)
    thresholds(alerts)
    if count_networks(store, user_id) >= max_per_user:
        raise ConflictError(f"a user may follow at most {max_per_user} networks")
    t = now()
    net = Network(new_id(), user_id, name, chain, list(endpoints), dict(alerts), t, t)
    with store.transaction():
        if store.execute("SELECT 1 FROM networks WHERE name = :name", {"name": name}):
            raise ConflictError(f"a network named {name!r} already exists")
        if store.execute("SELECT 1 FROM runs WHERE name = :run", {"run": net.run_name}):
            raise ConflictError(f"a run named {net.run_name!r} already exists; choose another name")
        store.execute(
            "INSERT INTO networks (id, user_id, name, chain, endpoints, alerts, created_at, updated_at)"
            " VALUES (:id, :user, :name, :chain, :endpoints, :alerts, :t, :t)",
            {"id": net.id, "user": user_id, "name": name, "chain": chain, "endpoints": json.dumps(endpoints),
             "alerts": json.dumps(alerts), "t": t},
        )  # fmt: skip
    return net


def get_network(store: Store, network_id: str) -> Network:
    rows = store.query(f"SELECT {_COLS} FROM networks WHERE id = :id", {"id": network_id})
    if not rows:
        raise NotFoundError("Network not found")
    return _row(rows[0])


def network_named(store: Store, name: str) -> Network | None:
    """The network called ``name`` (names are unique across users), or None."""
    rows = store.query(f"SELECT {_COLS} FROM networks WHERE name = :name", {"name": name})
    return _row(rows[0]) if rows else None


def list_networks(store: Store, user_id: str | None = None) -> list[Network]:
    """The networks of ``user_id``, or every network when None (admins, the server's start-up)."""
    if user_id is None:
        rows = store.query(f"SELECT {_COLS} FROM networks ORDER BY created_at, id")
    else:
        rows = store.query(f"SELECT {_COLS} FROM networks WHERE user_id = :user ORDER BY created_at, id",
                           {"user": user_id})  # fmt: skip
    return [_row(r) for r in rows]


def count_networks(store: Store, user_id: str) -> int:
    return int(store.query("SELECT count(*) FROM networks WHERE user_id = :user", {"user": user_id})[0][0])


def update_network(store: Store, network_id: str, endpoints: list[str] | None, alerts: dict[str, Any] | None,
                   *, max_endpoints: int) -> Network:  # fmt: skip
    """Replace the endpoints and/or the alert overrides (each only when given)."""
    get_network(store, network_id)
    if endpoints is not None:
        check_endpoints(endpoints, max_endpoints)
    if alerts is not None:
        thresholds(alerts)
    store.execute(
        "UPDATE networks SET endpoints = coalesce(:endpoints, endpoints), alerts = coalesce(:alerts, alerts),"
        " updated_at = :t WHERE id = :id",
        {"endpoints": None if endpoints is None else json.dumps(endpoints),
         "alerts": None if alerts is None else json.dumps(alerts), "t": now(), "id": network_id},
    )  # fmt: skip
    return get_network(store, network_id)


def run_id_of(store: Store, network: Network | str) -> int | None:
    """The id of a network's run (the network or its run's name); None before its follower wrote anything."""
    run = network if isinstance(network, str) else network.run_name
    rows = store.query("SELECT id FROM runs WHERE name = :run", {"run": run})
    return int(rows[0][0]) if rows else None


def stored_events(store: Store, run: str) -> int:
    """Events a network's run holds (its size in the store, in rows)."""
    rows = store.query("SELECT count(*) FROM events WHERE run_id IN (SELECT id FROM runs WHERE name = :run)",
                       {"run": run})  # fmt: skip
    return int(rows[0][0])


def delete_network(store: Store, network_id: str) -> Network:
    """Remove the network and its run's data (stop following it first)."""
    net = get_network(store, network_id)
    runs = store.query("SELECT id FROM runs WHERE name = :run", {"run": net.run_name})
    if runs:
        store.delete_run(int(runs[0][0]))
    store.execute("DELETE FROM networks WHERE id = :id", {"id": network_id})
    return net
