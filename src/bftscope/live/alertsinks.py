"""Where alerts go: the log (one line each), a webhook (JSON POST, in the background) and Prometheus gauges.

Every sink returns at once: the alert engine runs beside the follower and must never wait on a slow or
dead receiver. The webhook sink queues events (a bounded queue; what does not fit is dropped and counted)
and one worker thread posts them with a timeout, retrying with exponential backoff; failures are counted,
and its URL is only ever shown redacted.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass

import httpx
from prometheus_client import CollectorRegistry, Counter, Gauge

from bftscope.live.alerts import AlertEvent
from bftscope.live.endpoints import redact_text, redact_url

__all__ = ["LogSink", "PrometheusSink", "WebhookSink", "WebhookStats"]

log = logging.getLogger("bftscope.alerts")


class LogSink:
    """One log line per alert firing (WARNING) or clearing (INFO)."""

    def __init__(self, logger: logging.Logger = log) -> None:
        self.logger = logger

    def deliver(self, event: AlertEvent) -> None:
        state = "FIRING" if event.active else "cleared"
        self.logger.log(logging.WARNING if event.active else logging.INFO,
                        "alert %s network=%s rule=%s subject=%s: %s", state, event.network, event.rule,
                        event.subject, redact_text(event.message))  # fmt: skip


class PrometheusSink:
    """``bftscope_alert_active{network,rule,subject}`` 1 while an alert is active (removed when it clears),
    and ``bftscope_alerts_fired_total{network,rule}``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.active = Gauge("bftscope_alert_active", "1 while the alert is active", ["network", "rule", "subject"],
                            registry=registry)  # fmt: skip
        self.fired = Counter("bftscope_alerts_fired", "Alerts that started", ["network", "rule"], registry=registry)

    def deliver(self, event: AlertEvent) -> None:
        labels = (event.network, event.rule, event.subject)
        if event.active:
            self.active.labels(*labels).set(1)
            self.fired.labels(event.network, event.rule).inc()
        else:
            with contextlib.suppress(KeyError):  # never fired here (a restart): nothing to remove
                self.active.remove(*labels)


@dataclass
class WebhookStats:
    sent: int = 0
    failed: int = 0  # events given up on after every retry
    retries: int = 0
    dropped: int = 0  # events refused because the queue was full


class WebhookSink:
    """POSTs each event as JSON to ``url`` from a background thread: ``timeout_s`` per attempt, up to
    ``retries`` more attempts after ``backoff_s · 2^n`` seconds. A status of 2xx is success."""

    def __init__(self, url: str, *, timeout_s: float = 5.0, retries: int = 3, backoff_s: float = 1.0,
                 max_queue: int = 1000, transport: httpx.BaseTransport | None = None,
                 wait: Callable[[float], object] | None = None) -> None:  # fmt: skip
        self.url = url
        self.shown = redact_url(url)
        self.retries, self.backoff_s = retries, backoff_s
        self.stats = WebhookStats()
        self._queue: queue.Queue[AlertEvent | None] = queue.Queue(maxsize=max_queue)
        self._closing = threading.Event()
        self._wait = wait or self._closing.wait
        self._client = httpx.Client(timeout=timeout_s, transport=transport, follow_redirects=False)
        self._idle = threading.Condition()
        self._busy = 0
        self._thread = threading.Thread(target=self._work, name="bftscope-alert-webhook", daemon=True)
        self._thread.start()

    def deliver(self, event: AlertEvent) -> None:
        with self._idle:
            try:
                self._queue.put_nowait(event)
                self._busy += 1
            except queue.Full:
                self.stats.dropped += 1
                log.warning("alert webhook %s: queue full, alert dropped (%s %s)", self.shown, event.rule,
                            event.subject)  # fmt: skip

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """True once every queued event was sent or given up on (tests, shutdown)."""
        with self._idle:
            return self._idle.wait_for(lambda: self._busy == 0, timeout)

    def close(self) -> None:
        self._closing.set()
        self._queue.put(None)
        self._thread.join(timeout=5)
        self._client.close()

    def _work(self) -> None:
        while True:
            event = self._queue.get()
            if event is None:
                return
            try:
                self._post(event)
            finally:
                with self._idle:
                    self._busy -= 1
                    self._idle.notify_all()

    def _post(self, event: AlertEvent) -> None:
        problem = ""
        for attempt in range(self.retries + 1):
            if attempt:
                self.stats.retries += 1
                self._wait(self.backoff_s * 2 ** (attempt - 1))
                if self._closing.is_set():
                    break
            try:
                r = self._client.post(self.url, json=event.as_json())
                if 200 <= r.status_code < 300:
                    self.stats.sent += 1
                    return
                problem = f"HTTP {r.status_code}"
            except httpx.HTTPError as exc:
                problem = redact_text(f"{type(exc).__name__}: {exc}")
        self.stats.failed += 1
        log.warning("alert webhook %s: gave up on %s %s after %d attempt(s): %s", self.shown, event.rule,
                    event.subject, self.retries + 1, problem)  # fmt: skip
