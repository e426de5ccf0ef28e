"""What every request handler needs: the store, the settings, the job runner and small caches.

One :class:`ApiContext` is built by the app factory and kept on ``app.state.ctx``. The caches keep the
hot path of metric requests (token → user, simulation → owner and run, rollup JSON) off the database:
each entry is dropped when what it mirrors changes (a token's user deleted, a simulation deleted or
reprocessed), and token entries also expire after a minute.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from bftscope.config import Settings
from bftscope.control import simulations
from bftscope.control.jobs import JobRunner
from bftscope.live.supervisor import NetworkSupervisor
from bftscope.store.base import Store

__all__ = ["ApiContext", "TtlCache"]


class TtlCache:
    """A small thread-safe mapping whose entries expire after ``ttl_s`` seconds (None: never)."""

    def __init__(self, ttl_s: float | None = None, max_entries: int = 10_000) -> None:
        self._ttl = ttl_s
        self._max = max_entries
        self._data: dict[Any, tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def get(self, key: Any) -> Any:
        with self._lock:
            hit = self._data.get(key)
            if hit is None:
                return None
            if self._ttl is not None and time.monotonic() - hit[0] > self._ttl:
                del self._data[key]
                return None
            return hit[1]

    def put(self, key: Any, value: Any) -> None:
        with self._lock:
            if len(self._data) >= self._max:
                self._data.pop(next(iter(self._data)))
            self._data[key] = (time.monotonic(), value)

    def drop(self, predicate: Any = None) -> None:
        with self._lock:
            if predicate is None:
                self._data.clear()
            else:
                for k in [k for k in self._data if predicate(k)]:
                    del self._data[k]


@dataclass
class ApiContext:
    store: Store
    settings: Settings
    jobs: JobRunner
    telemetry: Any = None  # bftscope.api.routes.health.Telemetry
    pruner: Any = None  # bftscope.live.retention.Pruner, started with the app
    tokens: TtlCache = field(default_factory=lambda: TtlCache(ttl_s=60))
    owners: TtlCache = field(default_factory=TtlCache)
    answers: TtlCache = field(default_factory=lambda: TtlCache(max_entries=2000))
    bootstrap_closed: bool = False  # a user has existed: anonymous creates are refused for good
    networks: NetworkSupervisor | None = None  # the followed networks (None: the server follows none)
    network_metrics: Any = None  # bftscope.api.netmetrics.NetworkMetrics
    broadcaster: Any = None  # bftscope.live.broadcast.Broadcaster: published live entities, started with the app
    services: dict[str, Any] = field(default_factory=dict)  # what families serve beside routes (their own keys)

    def refuse_if_processing(self, column: Literal["id", "project_id", "user_id"], value: str) -> None:
        """409 when any simulation whose ``column`` (id, project_id, user_id) is ``value`` is being processed."""
        for sim_id in simulations.simulation_ids(self.store, column, value):
            self.jobs.refuse_if_active(sim_id)

    def remove_simulation(self, sim_id: str) -> None:
        """Delete a simulation's files, data and record, and forget what was cached about it."""
        simulations.delete_simulation(self.store, self.settings.data_dir, sim_id)
        self.forget_simulation(sim_id)

    def forget_simulation(self, sim_id: str) -> None:
        """Drop every cached fact about a simulation (deleted, reprocessed)."""
        self.owners.drop(lambda k: k == sim_id or k == (sim_id, "status"))
        self.answers.drop(lambda k: k[0] == sim_id)

