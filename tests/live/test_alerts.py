"""Alerts fire once when a condition starts and clear once when it ends; sinks never hold the engine up."""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any, ClassVar

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from bftscope.errors import InputError
from bftscope.live.alerts import AlertEngine, AlertEvent, Thresholds, parse_options, thresholds, thresholds_api
from bftscope.live.alertsinks import LogSink, PrometheusSink, WebhookSink

A, B = "A" * 40, "B" * 40


class Recorder:
    def __init__(self) -> None:
        self.events: list[AlertEvent] = []

    def deliver(self, event: AlertEvent) -> None:
        self.events.append(event)

    def seen(self) -> list[tuple[str, str, bool]]:
        return [(e.rule, e.subject, e.active) for e in self.events]


def votes(height: int, statuses: dict[str, str], round_: int = 0) -> list[dict[str, Any]]:
    return [{"height": height, "round": round_, "validator": v, "type": t, "status": s}
            for v, s in statuses.items() for t in ("prevote", "precommit")]  # fmt: skip


def engine(**limits: Any) -> tuple[AlertEngine, Recorder]:
    rec = Recorder()
    return AlertEngine("net1", Thresholds(**limits), [rec], clock=lambda: 0.0), rec


def test_consecutive_misses_fire_once_and_clear_once() -> None:
    eng, rec = engine(missed_votes=4, uptime_percent=None)
    eng.observe_votes(votes(1, {A: "voted", B: "absent"}))  # 2 misses
    assert rec.seen() == []
    eng.observe_votes(votes(2, {A: "voted", B: "unknown"}))  # unknown neither counts nor ends the run
    assert rec.seen() == []
    eng.observe_votes(votes(3, {A: "voted", B: "absent"}) + votes(4, {A: "voted", B: "absent"}))  # 6 in a row
    assert rec.seen() == [("missed_votes", B, True)]
    assert [a.subject for a in eng.active()] == [B]
    eng.observe_votes(votes(5, {A: "voted", B: "absent"}))  # still missing: no second firing
    eng.observe_votes(votes(6, {A: "voted", B: "nil"}))  # a nil vote is a vote: the run ends
    eng.observe_votes(votes(7, {A: "voted", B: "voted"}))
    assert rec.seen() == [("missed_votes", B, True), ("missed_votes", B, False)]
    assert eng.active() == []


def test_uptime_below_threshold_over_the_window() -> None:
    eng, rec = engine(missed_votes=None, uptime_percent=80, uptime_window=10, uptime_min_blocks=5)
    for h in range(1, 5):
        eng.observe_votes(votes(h, {A: "absent"}))
    assert rec.seen() == []  # fewer than 5 known heights: not judged yet
    eng.observe_votes(votes(5, {A: "voted"}))
    assert rec.seen() == [("uptime", A, True)]  # 1 of 5 signed
    for h in range(6, 40):
        eng.observe_votes(votes(h, {A: "late" if h % 2 else "voted"}))
    assert rec.seen() == [("uptime", A, True), ("uptime", A, False)]


def test_stall_round_escalation_and_endpoint_down() -> None:
    eng, rec = engine(stalled_s=30, round_escalation=2, endpoint_down_s=10)
    eng.observe_status(10, 0, [("wss://u:secret@rpc.example/websocket", "live")], now=0)
    eng.observe_status(10, 1, [("wss://u:secret@rpc.example/websocket", "backoff")], now=5)
    eng.observe_status(10, 2, [("wss://u:secret@rpc.example/websocket", "backoff")], now=20)
    eng.observe_status(10, 3, [("wss://u:secret@rpc.example/websocket", "connecting")], now=31)
    eng.observe_status(11, 0, [("wss://u:secret@rpc.example/websocket", "live")], now=40)
    shown = "wss://***@rpc.example/websocket"
    assert rec.seen() == [("round_escalation", "10", True), ("endpoint_down", shown, True),
                          ("stalled_height", "height", True), ("stalled_height", "height", False),
                          ("round_escalation", "10", False), ("endpoint_down", shown, False)]  # fmt: skip
    assert all("secret" not in e.message and "secret" not in e.subject for e in rec.events)


def test_retuning_keeps_what_was_seen_and_clears_rules_turned_off() -> None:
    eng, rec = engine(missed_votes=6, round_escalation=2, uptime_percent=None)
    eng.observe_votes(votes(1, {A: "absent"}) + votes(2, {A: "absent"}))  # 4 misses
    eng.observe_status(3, 2, [], now=0)
    eng.retune(Thresholds(missed_votes=5, round_escalation=None, uptime_percent=None))
    assert rec.seen() == [("round_escalation", "3", True), ("round_escalation", "3", False)]
    eng.observe_votes(votes(3, {A: "absent"}))  # 6 misses ≥ 5: the count went on across the change
    assert rec.seen()[-1] == ("missed_votes", A, True)


def test_disabled_rules_never_fire() -> None:
    eng, rec = engine(missed_votes=None, uptime_percent=None, stalled_s=None, round_escalation=None,
                      endpoint_down_s=None)  # fmt: skip
    eng.observe_votes([r for h in range(50) for r in votes(h, {A: "absent"})])
    eng.observe_status(1, 9, [("http://x", "failed")], now=0)
    eng.observe_status(1, 9, [("http://x", "failed")], now=10_000)
    assert rec.seen() == []


def test_thresholds_from_the_api_spelling() -> None:
    t = thresholds({"missedVotes": 3, "uptimePercent": 90.5, "stalledSeconds": None})
    assert (t.missed_votes, t.uptime_percent, t.stalled_s, t.round_escalation) == (3, 90.5, None, 3)
    assert thresholds_api(t)["missedVotes"] == 3 and thresholds_api(t)["stalledSeconds"] is None
    for bad in ({"nope": 1}, {"missedVotes": 0}, {"missedVotes": 2.5}, {"uptimePercent": 101},
                {"uptimeWindow": None}, {"stalledSeconds": "60"}, {"roundEscalation": True}):  # fmt: skip
        with pytest.raises(InputError):
            thresholds(bad)


def test_thresholds_from_command_line_options() -> None:
    base = Thresholds(missed_votes=7)
    t = parse_options(["missedVotes=3", "stalledSeconds=off", " uptimePercent = 99.5 "], base)
    assert (t.missed_votes, t.stalled_s, t.uptime_percent, t.round_escalation) == (3, None, 99.5, 3)
    assert parse_options([], base) == base
    for bad in (["missedVotes"], ["=3"], ["missedVotes=x"], ["nope=1"], ["uptimeWindow=off"], ["missedVotes=nan"]):
        with pytest.raises(InputError):
            parse_options(bad)


def test_prometheus_gauge_is_one_while_active_and_removed_when_cleared() -> None:
    reg = CollectorRegistry()
    eng = AlertEngine("net1", Thresholds(round_escalation=1), [PrometheusSink(reg)], clock=lambda: 0.0)
    eng.observe_status(5, 1, [], now=0)
    line = 'bftscope_alert_active{network="net1",rule="round_escalation",subject="5"} 1.0'
    assert line in generate_latest(reg).decode()
    eng.observe_status(6, 0, [], now=1)
    text = generate_latest(reg).decode()
    assert "bftscope_alert_active{" not in text
    assert 'bftscope_alerts_fired_total{network="net1",rule="round_escalation"} 1.0' in text


def test_log_sink_writes_one_line_per_change(caplog: pytest.LogCaptureFixture) -> None:
    eng = AlertEngine("net1", Thresholds(round_escalation=1), [LogSink()], clock=lambda: 0.0)
    with caplog.at_level(logging.INFO, logger="bftscope.alerts"):
        eng.observe_status(5, 1, [], now=0)
        eng.observe_status(5, 2, [], now=1)
        eng.observe_status(6, 0, [], now=2)
    assert [r.getMessage() for r in caplog.records] == [
        "alert FIRING network=net1 rule=round_escalation subject=5: height 5 reached round 1",
        "alert cleared network=net1 rule=round_escalation subject=5: height 5 ended",
    ]


class _Receiver(BaseHTTPRequestHandler):
    got: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).got.append({"auth": self.headers.get("Authorization"), **json.loads(body)})
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    got: list[dict[str, Any]] = []
    handler = type("Receiver", (_Receiver,), {"got": got})
    server = HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://hook:pw@127.0.0.1:{server.server_port}/alerts", got
    server.shutdown()
    server.server_close()


def test_webhook_receives_firing_and_clearing(receiver: tuple[str, list[dict[str, Any]]]) -> None:
    url, got = receiver
    sink = WebhookSink(url, timeout_s=2, retries=0)
    eng = AlertEngine("net1", Thresholds(round_escalation=1), [sink], clock=lambda: 0.0)
    eng.observe_status(5, 1, [], now=0)
    eng.observe_status(6, 0, [], now=1)
    assert sink.wait_idle()
    sink.close()
    assert [(g["rule"], g["subject"], g["state"], g["network"]) for g in got] == [
        ("round_escalation", "5", "firing", "net1"),
        ("round_escalation", "5", "cleared", "net1"),
    ]
    assert got[0]["auth"] is not None and got[0]["auth"].startswith("Basic ")  # the URL's credentials are used
    assert sink.stats.sent == 2 and sink.stats.failed == 0


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_dead_webhook_never_stalls_the_engine(caplog: pytest.LogCaptureFixture) -> None:
    waits: list[float] = []
    sink = WebhookSink(f"http://user:topsecret@127.0.0.1:{_closed_port()}/x", timeout_s=1, retries=2, backoff_s=0.5,
                       wait=waits.append)  # fmt: skip
    rec = Recorder()
    eng = AlertEngine("net1", Thresholds(round_escalation=1), [sink, rec], clock=lambda: 0.0)
    with caplog.at_level(logging.WARNING, logger="bftscope.alerts"):
        for h in range(20):  # every delivery returns at once; the other sinks get every event
            eng.observe_status(h, 1, [], now=h)
        assert len(rec.events) == 39  # 20 firings, 19 clearings
        assert sink.wait_idle(30)
    sink.close()
    assert sink.stats.failed == 39 and sink.stats.sent == 0 and sink.stats.retries == 78
    assert waits[:2] == [0.5, 1.0]
    assert "topsecret" not in caplog.text and "127.0.0.1" in caplog.text


def test_a_full_webhook_queue_drops_and_counts() -> None:
    gate = threading.Event()
    sink = WebhookSink("http://127.0.0.1:9/x", retries=1, max_queue=2, wait=lambda s: gate.wait())
    eng = AlertEngine("net1", Thresholds(round_escalation=1), [sink], clock=lambda: 0.0)
    for h in range(10):
        eng.observe_status(h, 1, [], now=h)
    assert sink.stats.dropped >= 10
    gate.set()
    sink.close()
