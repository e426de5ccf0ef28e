"""Per validator, from the rows of :func:`.votes.missed`: totals by status, runs of consecutive missed blocks,
and uptime over a window of signed blocks.

Streaks and uptime count blocks the way chains do: the precommit of each committed height's commit round
(``commit_round`` rows). ``voted`` and ``nil`` are signed (a nil precommit in a commit still counts as signed,
as in Cosmos SDK slashing); ``absent`` and ``late`` (seen only after the height committed, and not in the
commit) are missed; ``unknown`` is neither: it is left out of the uptime's denominator and ends a streak (a
streak never spans what was not observed).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from bftscope.families.cometbft.missed.votes import STATUSES

__all__ = ["DEFAULT_WINDOW", "MISSED", "SIGNED", "summarize"]

DEFAULT_WINDOW = 100
SIGNED = ("voted", "nil")
MISSED = ("absent", "late")


def _blocks(rows: Iterable[Mapping[str, Any]]) -> dict[str, list[tuple[int, str]]]:
    """Per validator: (height, status) of its commit-round precommit, by height."""
    out: dict[str, list[tuple[int, str]]] = {}
    for r in rows:
        if r["type"] == "precommit" and r.get("commit_round"):
            out.setdefault(r["validator"], []).append((r["height"], r["status"]))
    for blocks in out.values():
        blocks.sort()
    return out


def _streaks(blocks: list[tuple[int, str]]) -> dict[str, Any]:
    longest: dict[str, Any] | None = None
    run: dict[str, Any] | None = None
    for height, status in blocks:
        if status in MISSED:
            run = {"length": 1, "from": height, "to": height} if run is None else {**run, "length": run["length"] + 1,
                                                                                    "to": height}  # fmt: skip
            if longest is None or run["length"] > longest["length"]:
                longest = run
        else:
            run = None
    return {"longest_streak": longest, "current_streak": run}


def _uptime(blocks: list[tuple[int, str]], window: int) -> dict[str, Any]:
    last = blocks[-window:] if window > 0 else []
    signed = sum(s in SIGNED for _, s in last)
    missed = sum(s in MISSED for _, s in last)
    return {"window": len(last), "signed": signed, "missed": missed, "unknown": len(last) - signed - missed,
            "uptime": signed / (signed + missed) if signed + missed else None,
            "from": last[0][0] if last else None, "to": last[-1][0] if last else None}  # fmt: skip


def summarize(rows: list[dict[str, Any]], *, window: int = DEFAULT_WINDOW) -> list[dict[str, Any]]:
    """One entry per validator (in the rows' order): ``counts`` by status and type, ``solo`` (absent votes
    that were the only ones absent in their round), ``longest_streak`` and ``current_streak`` (``{"length",
    "from", "to"}`` or None) and ``uptime`` over the last ``window`` committed heights."""
    order: dict[str, dict[str, Any]] = {}
    for r in rows:
        entry = order.setdefault(r["validator"], {
            "validator": r["validator"], "power": r["power"], "solo": 0,
            "counts": {t: dict.fromkeys(STATUSES, 0) for t in ("prevote", "precommit")}})  # fmt: skip
        entry["counts"][r["type"]][r["status"]] += 1
        entry["solo"] += bool(r["solo"])
        if r["power"] is not None:
            entry["power"] = r["power"]
    blocks = _blocks(rows)
    for validator, entry in order.items():
        mine = blocks.get(validator, [])
        entry.update(_streaks(mine))
        entry["uptime"] = _uptime(mine, window)
    return list(order.values())
