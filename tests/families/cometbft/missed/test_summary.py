"""Totals, streaks and uptime from missed-vote rows: what counts as a signed block, what ends a streak."""

from __future__ import annotations

from typing import Any

from bftscope.families.cometbft.missed.summary import summarize

V, W = "0A" * 20, "0B" * 20


def _rows(statuses: dict[str, str]) -> list[dict[str, Any]]:
    """Heights 1.. with the commit-round precommit of V and W as given (one letter per height: v voted, n nil,
    l late, a absent, u unknown), each with a voted prevote, and an extra round 1 at height 2."""
    name = {"v": "voted", "n": "nil", "l": "late", "a": "absent", "u": "unknown"}
    rows: list[dict[str, Any]] = []
    for validator, letters in statuses.items():
        for h, letter in enumerate(letters, start=1):
            for t, s in (("prevote", "voted"), ("precommit", name[letter])):
                rows.append({"height": h, "round": 0, "validator": validator, "type": t, "status": s, "power": 3,
                             "solo": s == "absent" and validator == V, "commit_round": True})  # fmt: skip
        rows.append({"height": 2, "round": 1, "validator": validator, "type": "precommit", "status": "absent",
                     "power": 3, "solo": False, "commit_round": False})  # fmt: skip
    return rows


def test_streaks_and_uptime_count_commit_round_precommits() -> None:
    got = {s["validator"]: s for s in summarize(_rows({V: "vaalaauaav", W: "nvvvvvvvvv"}), window=100)}
    v = got[V]
    # heights 2-6 missed in a row (late counts: it is not in the commit); the unknown 7 ends it
    assert v["longest_streak"] == {"length": 5, "from": 2, "to": 6}
    assert v["current_streak"] is None  # height 10 voted
    assert v["uptime"] == {"window": 10, "signed": 2, "missed": 7, "unknown": 1, "uptime": 2 / 9, "from": 1,
                           "to": 10}  # fmt: skip
    assert v["counts"]["precommit"] == {"voted": 2, "late": 1, "nil": 0, "absent": 7, "unknown": 1}
    assert v["counts"]["prevote"]["voted"] == 10 and v["solo"] == 6 and v["power"] == 3
    w = got[W]
    assert w["uptime"]["uptime"] == 1.0 and w["longest_streak"] is None  # a nil precommit is a signed block
    last3 = summarize(_rows({V: "vaalaauaav"}), window=3)[0]
    assert last3["uptime"] == {"window": 3, "signed": 1, "missed": 2, "unknown": 0, "uptime": 1 / 3, "from": 8,
                               "to": 10}  # fmt: skip
    ongoing = summarize(_rows({V: "vvaa"}))[0]
    assert ongoing["current_streak"] == ongoing["longest_streak"] == {"length": 2, "from": 3, "to": 4}
    assert summarize([]) == []
