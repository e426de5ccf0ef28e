"""Waiting for a Casper follower's status to reach a condition (a condition, never a measured time)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from bftscope.families.casper.follow.status import CasperStatus

__all__ = ["until"]


async def until(follower: Any, done: Callable[[CasperStatus], bool], what: str, timeout_s: float = 30) -> CasperStatus:
    """Poll ``follower.status()`` until ``done`` holds; fails with the last status after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        st = follower.status()
        if done(st):
            return st
        await asyncio.sleep(0.02)
    raise AssertionError(f"{what}: not reached: {follower.status()}")
