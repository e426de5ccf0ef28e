"""Ctrl-C (SIGINT) and SIGTERM as a clean stop of a command that follows a live network (``bftscope watch``):
while :func:`stop_on_signals` is open they set an event instead of interrupting, so the follower stops, writes
what it holds and the command prints its summary."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Iterator

__all__ = ["stop_on_signals"]

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def stop_on_signals(stop: asyncio.Event) -> Iterator[asyncio.Event]:
    """Within the running loop: SIGINT and SIGTERM set ``stop`` (where the platform or thread allows it)."""
    loop = asyncio.get_running_loop()
    for sig in _SIGNALS:
        with contextlib.suppress(NotImplementedError, RuntimeError):  # not on this platform / not the main thread
            loop.add_signal_handler(sig, stop.set)
    try:
        yield stop
    finally:
        for sig in _SIGNALS:
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
