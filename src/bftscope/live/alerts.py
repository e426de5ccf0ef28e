"""Alerts on a followed network: rules with thresholds, each firing once when its condition starts and clearing
once when it ends, per (rule, subject).

Rules (``rule`` names as delivered; ``subject`` is what the condition is about):

- ``missed_votes`` (subject: validator): the validator's consecutive missed votes reach ``missed_votes``.
  Votes are taken in (height, round, prevote before precommit) order; ``absent`` counts, ``voted``,
  ``nil`` and ``late`` end the run, ``unknown`` (the monitor did not see) neither counts nor ends it.
- ``uptime`` (subject: validator): over the last ``uptime_window`` heights whose commit-round precommit is
  known (rows flagged ``commit_round``; without the flag, the height's last round), the share signed (voted,
  nil or late) is below ``uptime_percent`` — judged once at least ``uptime_min_blocks`` heights are known.
- ``stalled_height`` (subject: ``height``): no new height for ``stalled_s`` seconds.
- ``round_escalation`` (subject: the height): a height reached round ``round_escalation`` or more; clears
  when the next height begins.
- ``endpoint_down`` (subject: the endpoint, redacted): an endpoint has not been up for ``endpoint_down_s``.

The engine is chain-neutral: it reads the follower's status (height, round, endpoints' states) and vote
outcome rows of the missed-votes contract (``height, round, validator, type, status``). Every threshold can
be disabled (``None``). What fires and clears goes to :class:`AlertSink` s (log, webhook, Prometheus:
:mod:`bftscope.live.alertsinks`).
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any, Protocol

from bftscope.errors import InputError
from bftscope.live.endpoints import redact_url

__all__ = ["DOWN_STATES", "RULES", "ActiveAlert", "AlertEngine", "AlertEvent", "AlertSink", "Thresholds",
           "defaults", "parse_options", "thresholds", "thresholds_api"]  # fmt: skip

RULES = ("missed_votes", "uptime", "stalled_height", "round_escalation", "endpoint_down")
# endpoint states that count as "not up" (the live runner's and the follower's words)
DOWN_STATES = frozenset({"connecting", "backoff", "failed", "down", "error", "disconnected",
                         "reconnecting", "defunct", "incompatible"})  # the last three: an SSE node follower's words
_SIGNED = frozenset({"voted", "nil", "late"})
_TYPE_ORDER = {"prevote": 0, "precommit": 1}


@dataclass(frozen=True)
class Thresholds:
    """A network's alert thresholds; ``None`` turns a rule off."""

    missed_votes: int | None = 10
    uptime_percent: float | None = 95.0
    uptime_window: int = 100
    uptime_min_blocks: int = 10
    stalled_s: float | None = 60.0
    round_escalation: int | None = 3
    endpoint_down_s: float | None = 60.0


# API spelling (camelCase, as the rest of the API) → field, with the allowed range of each
_API: dict[str, tuple[str, float, float]] = {
    "missedVotes": ("missed_votes", 1, 1_000_000),
    "uptimePercent": ("uptime_percent", 0, 100),
    "uptimeWindow": ("uptime_window", 1, 1_000_000),
    "uptimeMinBlocks": ("uptime_min_blocks", 1, 1_000_000),
    "stalledSeconds": ("stalled_s", 1, 86_400 * 30),
    "roundEscalation": ("round_escalation", 1, 1_000),
    "endpointDownSeconds": ("endpoint_down_s", 1, 86_400 * 30),
}
_NOT_NULL = {"uptime_window", "uptime_min_blocks"}
_INTS = {"missed_votes", "uptime_window", "uptime_min_blocks", "round_escalation"}


def defaults(settings: Any) -> Thresholds:
    """The thresholds ``BFTSCOPE_ALERT_*`` settings give (every network's base; ``bftscope watch``'s)."""
    return Thresholds(missed_votes=settings.alert_missed_votes, uptime_percent=settings.alert_uptime_percent,
                      uptime_window=settings.alert_uptime_window, uptime_min_blocks=settings.alert_uptime_min_blocks,
                      stalled_s=settings.alert_stalled_s, round_escalation=settings.alert_round_escalation,
                      endpoint_down_s=settings.alert_endpoint_down_s)  # fmt: skip


def thresholds(overrides: Mapping[str, Any], base: Thresholds | None = None) -> Thresholds:
    """``base`` (the defaults) with the API-spelled ``overrides`` applied; :class:`InputError` for an
    unknown key or a value out of range. ``null`` turns a rule off."""
    changes: dict[str, Any] = {}
    for key, value in overrides.items():
        if key not in _API:
            raise InputError(f"alerts: unknown threshold {key!r}; known: {', '.join(_API)}")
        name, low, high = _API[key]
        if value is None and name not in _NOT_NULL:
            changes[name] = None
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise InputError(f"alerts.{key} must be a number")
        if name in _INTS and value != int(value):
            raise InputError(f"alerts.{key} must be a whole number")
        if not low <= value <= high:
            raise InputError(f"alerts.{key} must be between {low:g} and {high:g}")
        changes[name] = int(value) if name in _INTS else float(value)
    return replace(base or Thresholds(), **changes)


def parse_options(options: Iterable[str], base: Thresholds | None = None) -> Thresholds:
    """Thresholds from command-line ``KEY=VALUE`` options (``bftscope watch --alert missedVotes=5 --alert
    stalledSeconds=off``): the API's keys, a number, or ``off`` to turn a rule off."""
    overrides: dict[str, Any] = {}
    for option in options:
        key, sep, text = option.partition("=")
        key, text = key.strip(), text.strip()
        if not sep or not key or not text:
            raise InputError(f"--alert {option!r}: expected KEY=VALUE, e.g. missedVotes=5 or stalledSeconds=off")
        if text.lower() == "off":
            overrides[key] = None
            continue
        try:
            overrides[key] = int(text) if text.isdigit() else float(text)
        except ValueError:
            raise InputError(f"--alert {key}: {text!r} is not a number (or 'off')") from None
    return thresholds(overrides, base)


def thresholds_api(t: Thresholds) -> dict[str, Any]:
    """The thresholds in the API's spelling (every key, ``None`` for a rule that is off)."""
    values = asdict(t)
    return {key: values[name] for key, (name, _, _) in _API.items()}


@dataclass(frozen=True)
class AlertEvent:
    """An alert starting (``active``) or ending, as delivered to the sinks."""

    network: str
    rule: str
    subject: str
    active: bool
    at: float  # epoch seconds
    value: float | None
    threshold: float | None
    message: str

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "state": "firing" if self.active else "cleared"}


@dataclass
class ActiveAlert:
    rule: str
    subject: str
    since: float
    value: float | None
    message: str


class AlertSink(Protocol):
    def deliver(self, event: AlertEvent) -> None:
        """Hand over one event; must return at once (a sink that does I/O queues it)."""
        ...


class AlertEngine:
    """One network's alert state; fed the follower's status (:meth:`observe_status`) and vote outcomes
    (:meth:`observe_votes`)."""

    def __init__(self, network: str, limits: Thresholds, sinks: Sequence[AlertSink] = (),
                 clock: Callable[[], float] = time.time) -> None:  # fmt: skip
        self.network = network
        self.limits = limits
        self.sinks = list(sinks)
        self._clock = clock
        self._active: dict[tuple[str, str], ActiveAlert] = {}
        self._streak: dict[str, int] = {}
        self._signed: dict[str, deque[bool]] = {}
        self._height: int | None = None
        self._height_since: float | None = None
        self._down_since: dict[str, float] = {}
        self.delivered = 0

    # --- inputs -----------------------------------------------------------------------------------

    def observe_status(self, height: int | None, round_: int | None, endpoints: Iterable[tuple[str, str]],
                       now: float | None = None) -> None:  # fmt: skip
        """The follower's current height and round, and ``(url, state)`` of each endpoint."""
        now = self._clock() if now is None else now
        t = self.limits
        if height is not None and height != self._height:
            self._height, self._height_since = height, now
        if self._height_since is not None and t.stalled_s is not None:
            idle = now - self._height_since
            self._set("stalled_height", "height", idle >= t.stalled_s, idle, t.stalled_s, now,
                      f"no new height for {idle:.0f} s (last {self._height})")  # fmt: skip
        for rule, subject in [k for k in self._active if k[0] == "round_escalation"]:
            if subject != str(height):
                self._set(rule, subject, False, None, t.round_escalation, now, f"height {subject} ended")
        if height is not None and round_ is not None and t.round_escalation is not None:
            self._set("round_escalation", str(height), round_ >= t.round_escalation, round_, t.round_escalation,
                      now, f"height {height} reached round {round_}")  # fmt: skip
        seen = set()
        for url, state in endpoints:
            shown = redact_url(url)
            seen.add(shown)
            if state in DOWN_STATES:
                self._down_since.setdefault(shown, now)
            else:
                self._down_since.pop(shown, None)
            if t.endpoint_down_s is None:
                continue
            down = now - self._down_since[shown] if shown in self._down_since else 0.0
            self._set("endpoint_down", shown, shown in self._down_since and down >= t.endpoint_down_s, down,
                      t.endpoint_down_s, now, f"endpoint {shown} {state} for {down:.0f} s")  # fmt: skip
        for rule, subject in [k for k in self._active if k[0] == "endpoint_down" and k[1] not in seen]:
            self._set(rule, subject, False, None, t.endpoint_down_s, now, f"endpoint {subject} removed")

    def observe_votes(self, rows: Iterable[Mapping[str, Any]], now: float | None = None) -> None:
        """Vote outcome rows (``height, round, validator, type, status``) of heights not given before."""
        now = self._clock() if now is None else now
        t = self.limits
        ordered = sorted(rows, key=lambda r: (r["height"], r["round"], _TYPE_ORDER.get(r["type"], 2), r["validator"]))
        commit: dict[tuple[int, str], str] = {}  # (height, validator) → status of the last round's precommit
        for r in ordered:
            who, status = str(r["validator"]), str(r["status"])
            if status == "absent":
                self._streak[who] = self._streak.get(who, 0) + 1
            elif status in _SIGNED:
                self._streak[who] = 0
            if t.missed_votes is not None and status != "unknown":
                n = self._streak[who]
                self._set("missed_votes", who, n >= t.missed_votes, n, t.missed_votes, now,
                          f"validator {who} missed {n} consecutive votes")  # fmt: skip
            if r["type"] == "precommit" and r.get("commit_round", True):  # without the flag: the last round's
                commit[(int(r["height"]), who)] = status
        for (_, who), status in sorted(commit.items()):
            if status == "unknown":
                continue
            window = self._signed.setdefault(who, deque(maxlen=t.uptime_window))
            window.append(status in _SIGNED)
            if t.uptime_percent is None or len(window) < min(t.uptime_min_blocks, t.uptime_window):
                continue
            pct = 100.0 * sum(window) / len(window)
            self._set("uptime", who, pct < t.uptime_percent, pct, t.uptime_percent, now,
                      f"validator {who} signed {pct:.1f}% of the last {len(window)} known heights")  # fmt: skip

    # --- state ------------------------------------------------------------------------------------

    def active(self) -> list[ActiveAlert]:
        return [self._active[k] for k in sorted(self._active)]

    def retune(self, limits: Thresholds) -> None:
        """New thresholds in place (what was observed stays); the alerts of a rule turned off clear."""
        self.limits = limits
        self._signed = {k: deque(v, maxlen=limits.uptime_window) for k, v in self._signed.items()}
        off = {"missed_votes": limits.missed_votes, "uptime": limits.uptime_percent, "stalled_height": limits.stalled_s,
               "round_escalation": limits.round_escalation, "endpoint_down": limits.endpoint_down_s}  # fmt: skip
        now = self._clock()
        for rule, subject in [k for k in self._active if off[k[0]] is None]:
            self._set(rule, subject, False, None, None, now, f"rule {rule} turned off")

    def clear_all(self, reason: str = "network no longer followed") -> None:
        """End every active alert (the network was deleted or its thresholds changed)."""
        now = self._clock()
        for rule, subject in list(self._active):
            self._set(rule, subject, False, None, None, now, reason)

    def _set(self, rule: str, subject: str, on: bool, value: float | None, limit: float | None, now: float,
             message: str) -> None:  # fmt: skip
        key = (rule, subject)
        if on == (key in self._active):
            if on:
                self._active[key].value = value
            return
        if on:
            self._active[key] = ActiveAlert(rule, subject, now, value, message)
        else:
            del self._active[key]
        event = AlertEvent(self.network, rule, subject, on, now, value, limit, message)
        for sink in self.sinks:
            sink.deliver(event)
        self.delivered += 1
