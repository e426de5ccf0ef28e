"""``bftscope_network_*{network=…}`` on ``/metrics``: each followed network's figures, read from its
follower's status when the endpoint is scraped (a network no longer followed loses its series)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Gauge

from bftscope.api.routes.networks import status_of
from bftscope.control import networks
from bftscope.control.networks import stored_events
from bftscope.live import retention
from bftscope.live.alerts import DOWN_STATES
from bftscope.live.supervisor import Followed, NetworkSupervisor
from bftscope.store.base import Store

__all__ = ["NetworkMetrics"]

_FIGURES = {
    "height": "Current height of the followed network",
    "lag": "Heights the follower is behind its node (/status latest height − followed height)",
    "events_per_second": "Events written per second (last 10 s)",
    "gaps": "Observation gaps recorded since the follower started",
    "reconnects": "Reconnects over every endpoint since the follower started",
    "events_total": "Events written since the follower started",
    "store_events": "Events the network's run holds in the store",
    "store_bytes": "The network's run's estimated share of the store file, in bytes",
    "endpoints_up": "Endpoints whose connection is up or on standby",
    "feed_clients": "Feed websocket clients",
    "feed_overflows": "Feed clients disconnected for falling behind",
    "restarts": "Times the follower was restarted after failing",
}


class NetworkMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.gauges = {name: Gauge(f"bftscope_network_{name}", doc, ["network"], registry=registry)
                       for name, doc in _FIGURES.items()}  # fmt: skip
        self._shown: set[str] = set()
        self._registry = registry
        self._own: dict[str, Gauge] = {}  # a status's own per-node gauges (its ``gauges()``), by metric name
        self._own_shown: set[tuple[str, tuple[str, ...]]] = set()

    def update(self, supervisor: NetworkSupervisor | None, store: Store, file_bytes: int | None = None) -> None:
        entries = list(supervisor.networks.values()) if supervisor is not None else []
        now = {e.spec.name for e in entries}
        for gone in self._shown - now:
            for g in self.gauges.values():
                g.remove(gone)
        self._shown = now
        for e in entries:
            st = status_of(e)
            run_id = networks.run_id_of(store, e.spec.run)
            size = retention.store_size(store, run_id, file_bytes=file_bytes) if run_id is not None else None
            figures = {
                "height": st.height, "lag": st.lag, "events_per_second": st.eventsPerSecond, "gaps": st.gaps,
                "reconnects": sum(p.reconnects or 0 for p in st.endpoints), "events_total": st.eventsTotal,
                "store_events": stored_events(store, e.spec.run),
                "store_bytes": size.bytes_estimate if size is not None else 0,
                "endpoints_up": sum(p.state not in DOWN_STATES for p in st.endpoints),
                "feed_clients": st.feedSubscribers, "feed_overflows": st.feedOverflows, "restarts": st.restarts,
            }  # fmt: skip
            for name, value in figures.items():
                self.gauges[name].labels(e.spec.name).set(float("nan") if value is None else value)
        self._update_own(entries)

    def _update_own(self, entries: list[Followed]) -> None:
        """Gauges a follower's status declares itself (``gauges()``: metric, help, labels, value), e.g. each
        followed node's status; labelled ``network`` and ``node``; a series no longer reported is removed."""
        shown: set[tuple[str, tuple[str, ...]]] = set()
        for e in entries:
            st = e.status()
            gauges = getattr(st, "gauges", None)
            if not callable(gauges):
                continue
            for metric, doc, labels, value in gauges():
                gauge = self._own.get(metric)
                if gauge is None:
                    gauge = self._own[metric] = Gauge(metric, doc, ["network", "node"], registry=self._registry)
                key: tuple[str, ...] = (e.spec.name, str(labels.get("node", "")))
                gauge.labels(*key).set(value)
                shown.add((metric, key))
        for metric, key in self._own_shown - shown:
            self._own[metric].remove(*key)
        self._own_shown = shown
