"""``bftscope top --rpc URL``: rows from a followed network. :class:`FollowerSource` turns a follower (the shape of
``families/cometbft/live/follower.NetworkFollower``: ``listen``, ``status``, ``run``, ``stop``, validator sets handed
to a callback) into a :class:`~.source.RowSource`; the follower's decoder makes the rows, none is made here."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any, Protocol

from bftscope.families.cometbft.top.source import RowBatch
from bftscope.families.cometbft.top.view import Connection, SourceStatus, ValidatorLike

__all__ = ["MAX_QUEUED", "FollowerLike", "FollowerSource", "rpc_source"]

MAX_QUEUED = 10_000  # batches waiting for the view; past this the oldest are dropped, counted in the header


class EndpointLike(Protocol):
    @property
    def url(self) -> str: ...
    @property
    def state(self) -> str: ...
    @property
    def frames(self) -> int: ...
    @property
    def reconnects(self) -> int: ...
    @property
    def active(self) -> bool: ...
    @property
    def last_error(self) -> str | None: ...


class FollowerStatusLike(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def endpoints(self) -> Sequence[EndpointLike]: ...


class FollowerLike(Protocol):
    def listen(self, callback: Callable[[Sequence[Mapping[str, Any]]], None]) -> Callable[[], None]: ...
    def status(self) -> FollowerStatusLike: ...
    async def run(self) -> None: ...
    async def stop(self) -> None: ...


# An endpoint's state → the view's connection: live is connected; trying again is reconnecting; else unknown.
_CONNECTION: dict[str, Connection] = {"live": "connected", "connecting": "reconnecting", "down": "reconnecting"}


class FollowerSource:
    """Runs ``follower`` while the view reads; each batch it writes is queued for the view. ``on_validator_set``
    is the callback to give the follower for its validator sets."""

    def __init__(self, follower: FollowerLike, *, clock: Callable[[], int] = time.time_ns) -> None:
        self.follower, self._clock = follower, clock
        # each batch with the status as it was written: a loss and reconnect between two batches is seen in order,
        # however far the view is behind
        self._queue: asyncio.Queue[tuple[RowBatch, SourceStatus]] = asyncio.Queue()
        self._as_of: SourceStatus | None = None
        self._validators: list[ValidatorLike] = []
        self.dropped = 0
        self._unlisten = follower.listen(self._put)

    def _put(self, rows: Sequence[Mapping[str, Any]]) -> None:
        if self._queue.qsize() >= MAX_QUEUED:
            self.dropped += len(self._queue.get_nowait()[0])
        self._queue.put_nowait((list(rows), self._now_status()))

    def on_validator_set(self, height: int, validators: Sequence[ValidatorLike]) -> bool:
        if validators:
            self._validators = list(validators)
        return True

    async def batches(self) -> AsyncIterator[RowBatch]:
        run = asyncio.ensure_future(self.follower.run())
        try:
            while True:
                get = asyncio.ensure_future(self._queue.get())
                done, _ = await asyncio.wait({get, run}, return_when=asyncio.FIRST_COMPLETED)
                if get in done:
                    yield self._take(get.result())
                    continue
                get.cancel()
                while not self._queue.empty():
                    yield self._take(self._queue.get_nowait())
                run.result()  # the follower's own failure, if any, is the view's to show
                return
        finally:
            if not run.done():
                await self.follower.stop()
                with contextlib.suppress(asyncio.CancelledError):
                    await run

    def _take(self, item: tuple[RowBatch, SourceStatus]) -> RowBatch:
        batch, self._as_of = item
        return batch

    def status(self) -> SourceStatus:
        """The status as of the batch last given while more are queued; the follower's own once caught up."""
        if self._as_of is not None and not self._queue.empty():
            return self._as_of
        return self._now_status()

    def _now_status(self) -> SourceStatus:
        st = self.follower.status()
        eps = list(st.endpoints)
        active = next((e for e in eps if e.active), None)
        shown = active or (eps[0] if eps else None)
        connection = _CONNECTION.get(str(shown.state), "unknown") if shown else "unknown"
        details = [e.last_error for e in ([shown] if shown else []) if e.last_error and connection != "connected"]
        if self.dropped:
            details.append(f"{self.dropped:,} rows dropped: the view fell behind")
        return SourceStatus(
            connection, st.name, shown.url if shown else "", frames=sum(e.frames for e in eps),
            reconnects=sum(e.reconnects for e in eps), detail="; ".join(details),
        )  # fmt: skip

    def validators(self) -> Sequence[ValidatorLike]:
        return self._validators

    def names(self) -> Mapping[str, str]:
        return {}

    def now_ns(self) -> int:
        return self._clock()

    async def close(self) -> None:
        self._unlisten()
        await self.follower.stop()


class _NoStore:
    """``top --rpc`` stores nothing: the follower's rows go to the view only (``bftscope watch`` stores a network)."""

    def write(self, source: str, events: Sequence[Any]) -> None:
        return None

    def gap(self, gap: Any) -> None:
        return None

    def flush(self) -> None:
        return None


def rpc_source(urls: list[str], name: str | None = None, **follower_options: Any) -> FollowerSource:
    """A row source following ``urls`` (one network's endpoints, failover between them) through the live follower;
    ``follower_options`` go to :class:`~bftscope.families.cometbft.live.follower.NetworkFollower`."""
    from bftscope.families.cometbft.live.follower import NetworkFollower

    sources: list[FollowerSource] = []
    follower = NetworkFollower(
        name or urls[0], urls, _NoStore(), on_validator_set=lambda h, vs: sources[0].on_validator_set(h, vs),
        **follower_options,
    )  # fmt: skip
    sources.append(FollowerSource(follower))
    return sources[0]
