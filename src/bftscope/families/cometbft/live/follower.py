"""Following one CometBFT network (docs/live.md "Following a network"): :class:`NetworkFollower`.

Several RPC endpoints, one active at a time. The active one's websocket is subscribed to the consensus events
(:func:`~bftscope.families.cometbft.live.endpoint.subscribe_messages`, re-sent on every connect); a connection
that fails, closes, or stays silent past ``silence_timeout`` (the websocket itself pings) is lost, and the
follower fails over to the next endpoint at once, waiting a capped backoff with full jitter
(:class:`~bftscope.ingest.live.Backoff`) only when it has tried them all since the last healthy connection.

Heights are tracked, not assumed: after a reconnect the heights from the last committed one seen (its late
precommits) to the node's height + 1 (``/status``) were not (fully) observed, and so were the heights skipped by
a jump in the stream (a node drops events for a slow subscriber). Each gap is backfilled in the background
(:mod:`~bftscope.families.cometbft.live.backfill`) and stored as one ``observation_gap`` row. Nothing is
written twice (:class:`~bftscope.families.cometbft.live.seen.Seen`). Validator sets are fetched at start and
where updates take effect, and handed to ``on_validator_set``; an RPC error never replaces a set.

Rows are written in batches (every ``flush_interval`` seconds) to the sink, one node per endpoint label, and
each written batch is given to the :meth:`NetworkFollower.listen` callbacks.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from bftscope.errors import TransportClosed, TransportError
from bftscope.families.cometbft import kinds
from bftscope.families.cometbft.live.backfill import Backfiller, GapSpan
from bftscope.families.cometbft.live.decoder import RpcDecoder
from bftscope.families.cometbft.live.endpoint import Endpoint, parse_endpoint, subscribe_messages
from bftscope.families.cometbft.live.rpc import RpcClient, RpcError, RpcValidator, ValidatorSet
from bftscope.families.cometbft.live.seen import Seen
from bftscope.ingest.live import JITTER, Backoff, EventSink, hand_over
from bftscope.sources.base import Transport
from bftscope.sources.websocket import WebSocketTransport

__all__ = ["EndpointState", "EndpointStatus", "NetworkFollower", "NetworkStatus"]

Rows = Sequence[Mapping[str, Any]]
MAX_BUFFERED = 200_000  # rows kept for a store that refuses writes before the oldest are dropped (counted)


class EndpointState(StrEnum):
    IDLE = "idle"
    CONNECTING = "connecting"
    LIVE = "live"
    DOWN = "down"  # its last attempt failed
    STOPPED = "stopped"


@dataclass
class EndpointStatus:
    url: str
    label: str
    state: EndpointState = EndpointState.IDLE
    frames: int = 0
    events: int = 0
    reconnects: int = 0
    errors: int = 0  # failed connections, lost streams, JSON-RPC errors, failed RPC calls
    last_error: str | None = None
    active: bool = False
    skipped: dict[str, int] = field(default_factory=dict)  # the decoder's counts, by reason


@dataclass
class NetworkStatus:
    name: str
    height: int | None  # the height in progress (latest step seen)
    round: int | None
    step: str | None
    step_since: float | None  # epoch s
    committed: int | None  # the last committed height observed or backfilled
    node_height: int | None  # the active node's latest height (/status)
    observed_height: int | None  # the highest committed block written (from the stream or backfilled)
    backfill_pending: int  # gaps and validator sets still to fetch
    endpoints: list[EndpointStatus]
    gaps: int
    events_total: int
    duplicates: int = 0
    backfilled_heights: int = 0
    not_refilled_heights: int = 0
    validator_sets: int = 0
    validator_errors: int = 0
    write_errors: int = 0
    listener_errors: int = 0


@dataclass
class _Ep:
    endpoint: Endpoint
    status: EndpointStatus
    rpc: RpcClient


class NetworkFollower:
    def __init__(
        self,
        name: str,
        endpoints: Sequence[str],
        sink: EventSink,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        draw: Callable[[], float] = JITTER,
        backoff: Backoff | None = None,
        max_attempts: int | None = None,
        silence_timeout: float = 60.0,
        rpc_timeout: float = 10.0,
        max_backfill: int = 100,
        flush_interval: float = 0.1,  # the store batches every network's writes (livesink hold_s)
        transport_factory: Callable[[Endpoint], Transport] | None = None,
        on_validator_set: Callable[[int, list[RpcValidator]], object] | None = None,
        seen: Seen | None = None,
        committed: int | None = None,
        last_seen_at: float | None = None,
    ) -> None:
        parsed = list({e.label: e for e in map(parse_endpoint, endpoints)}.values())
        if not parsed:
            raise ValueError("a network needs at least one RPC endpoint")
        self.name, self.sink = name, sink
        self._eps = [_Ep(e, EndpointStatus(e.url, e.label), RpcClient(e.http, timeout=rpc_timeout)) for e in parsed]
        self._clock, self._sleep, self._draw = clock, sleep, draw
        self._backoff, self._max_attempts = backoff or Backoff(), max_attempts
        self._silence, self._flush_interval = silence_timeout, flush_interval
        self._transport = transport_factory or (
            lambda e: WebSocketTransport(e.ws, subscribe=subscribe_messages(), close_timeout=2.0)
        )
        self._on_validator_set = on_validator_set
        self._seen = seen or Seen()
        self._backfill = Backfiller(max_heights=max_backfill, write=self._emit, on_set=self._got_set, clock=clock)
        self._listeners: list[Callable[[Rows], None]] = []
        self._buffer: dict[str, list[Mapping[str, Any]]] = {}
        self._jobs: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self._committed = committed
        self._node_height: int | None = None
        self._pending_sets: set[int] = set()
        self._sets: list[tuple[int, list[str]]] = []  # (height, addresses in set order), for absent signatures
        self._have_set = False
        # A loss not yet closed by a reconnect: (endpoint label, since, reason). A resumed run starts inside one.
        self._lost: tuple[str, float, str] | None = None
        if last_seen_at is not None and committed is not None:
            self._lost = (self._eps[0].endpoint.label, last_seen_at, "not followed (bftscope was not running)")
        self._observing = self._lost is not None
        self._last_active: _Ep | None = None
        self._observed_height = committed  # a resumed run: what the store already holds
        self.last_write_error: str | None = None
        self._busy = 0
        self._awaiting_heights: GapSpan | None = None
        self._last_block_at: float | None = None
        self._step: tuple[int | None, int | None, str | None, float | None] = (None, None, None, None)
        self._counts: Counter[str] = Counter()
        self._events_total = 0
        self._stopping = False
        self._task: asyncio.Task[Any] | None = None

    # --- public ---------------------------------------------------------------------------------

    def listen(self, callback: Callable[[Rows], None]) -> Callable[[], None]:
        """Call ``callback`` with each batch of rows as it is written; returns the function that stops it."""
        self._listeners.append(callback)
        return lambda: self._listeners.remove(callback) if callback in self._listeners else None

    def status(self) -> NetworkStatus:
        height, rnd, step, since = self._step
        return NetworkStatus(
            name=self.name, height=height, round=rnd, step=step, step_since=since, committed=self._committed,
            node_height=self._node_height, observed_height=self._observed_height,
            backfill_pending=self._jobs.qsize() + self._busy, endpoints=[e.status for e in self._eps],
            gaps=self._counts["gaps"],
            events_total=self._events_total, duplicates=self._seen.duplicates,
            backfilled_heights=self._backfill.refilled_heights,
            not_refilled_heights=self._backfill.not_refilled_heights,
            validator_sets=self._counts["validator_sets"],
            validator_errors=self._counts["validator_errors"] + self._backfill.errors_of("validators"),
            write_errors=self._counts["write_errors"], listener_errors=self._counts["listener_errors"],
        )  # fmt: skip

    async def run(self) -> None:
        """Follow until :meth:`stop` (or cancellation); then write what is held and flush the sink."""
        self._stopping = False
        self._task = asyncio.current_task()
        worker = asyncio.create_task(self._work(), name=f"follow:{self.name}:backfill")
        flusher = asyncio.create_task(self._flush_loop(), name=f"follow:{self.name}:flush")
        try:
            await self._follow()
        except asyncio.CancelledError:
            if not self._stopping:
                raise
        finally:
            for task in (worker, flusher):
                task.cancel()
            await asyncio.gather(worker, flusher, return_exceptions=True)
            await self._shutdown()

    async def stop(self) -> None:
        self._stopping = True
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait([self._task])

    # --- connections ----------------------------------------------------------------------------

    async def _follow(self) -> None:
        streak, i, n = 0, 0, len(self._eps)
        while True:
            if streak and streak % n == 0:  # every endpoint failed since the last healthy connection
                rounds = streak // n
                if self._max_attempts is not None and rounds > self._max_attempts:
                    return
                await self._sleep(self._backoff.delay(rounds - 1, self._draw))
            healthy = await self._stream(self._eps[i])
            streak = 0 if healthy else streak + 1
            i = (i + 1) % n

    async def _stream(self, ep: _Ep) -> bool:
        """Connect to ``ep`` and take its frames until the connection is lost; True when events came."""
        st = ep.status
        st.state = EndpointState.CONNECTING
        if st.frames or st.errors:
            st.reconnects += 1
        transport = self._transport(ep.endpoint)
        decoder = RpcDecoder(clock_ns=lambda: int(self._clock() * 1e9), last_block_height=self._committed)
        events_before = st.events
        try:
            try:
                await transport.open()
            except TransportError as exc:
                self._lose(ep, f"cannot connect: {exc}")
                return False
            st.state, st.active = EndpointState.LIVE, True
            self._last_active = ep
            self._observing = True
            await self._connected(ep)
            try:
                while True:
                    async with asyncio.timeout(self._silence):  # not wait_for: on 3.11 it can swallow a cancel
                        frame = await transport.receive()
                    errors = decoder.rpc_errors
                    self._take(ep, decoder, decoder.feed(frame))
                    st.frames += 1
                    if decoder.rpc_errors > errors:  # a refused subscription, an overloaded node
                        st.errors += decoder.rpc_errors - errors
                        st.last_error = decoder.errors[-1]
            except TimeoutError:
                reason = f"silent for {self._silence:g} s"
            except TransportClosed as exc:
                reason = f"closed: {exc}"
            except TransportError as exc:
                reason = str(exc)
            self._lose(ep, reason)
            return st.events > events_before
        finally:
            st.active = False
            st.skipped = dict(decoder.report.skipped)
            await transport.close()

    def _lose(self, ep: _Ep, reason: str) -> None:
        st = ep.status
        st.state, st.errors, st.last_error = EndpointState.DOWN, st.errors + 1, reason[:300]
        if self._lost is None and self._observing:  # before the first connection nothing was being observed
            self._lost = (ep.endpoint.label, self._clock(), reason[:300])

    async def _connected(self, ep: _Ep) -> None:
        """After (re)subscribing: the node's height, the gap since the loss, the first validator set."""
        try:
            self._node_height = (await ep.rpc.status()).height
        except RpcError as exc:
            ep.status.errors, ep.status.last_error = ep.status.errors + 1, str(exc)[:300]
            self._node_height = None
        if self._lost is not None:
            label, since, reason = self._lost
            self._lost = None
            span = GapSpan(label, since, self._clock(), reason)
            if self._committed is not None:  # from the last committed height: its late precommits were missed too
                span.first, span.refill_from = self._committed, self._committed + 1
                if self._node_height is None:
                    self._awaiting_heights = span  # the first NewBlock of the stream closes it
                    return
                self._close_heights(span, self._node_height)
            self._jobs.put_nowait(("gap", span))
        elif self._committed is None and self._node_height is not None:
            self._committed = self._node_height  # the first connection: observing from the height in progress
        if not self._have_set:
            self._jobs.put_nowait(("validators", None))

    def _close_heights(self, span: GapSpan, node_height: int) -> None:
        """Heights of a gap once the node's height is known: up to the one in progress (``node_height`` + 1)."""
        assert span.refill_from is not None
        span.last = max(span.refill_from, node_height + 1)
        span.refill_to = node_height if node_height >= span.refill_from else None
        self._advance(node_height)

    # --- rows -----------------------------------------------------------------------------------

    def _take(self, ep: _Ep, decoder: RpcDecoder, rows: list[dict[str, Any]]) -> None:
        for h in decoder.set_changes:
            self._want_set(h)
        decoder.set_changes.clear()
        for row in rows:
            kind = row["kind"]
            if kind == kinds.STEP:
                self._step = (row["height"], row["round"], row["step"], self._clock())
            elif kind == kinds.BLOCK_COMMITTED:
                self._stream_block(ep, row["height"])
            elif kind == kinds.VALIDATOR_UPDATE and row["height"] is not None:
                self._want_set(row["height"])
        ep.status.events += len(rows)
        self._emit(ep.endpoint.label, rows)

    def _stream_block(self, ep: _Ep, height: int) -> None:
        now = self._clock()
        if self._awaiting_heights is not None:
            span, self._awaiting_heights = self._awaiting_heights, None
            self._close_heights(span, height - 1)
            self._jobs.put_nowait(("gap", span))
        elif self._committed is not None and height > self._committed + 1:
            first = self._committed + 1
            span = GapSpan(ep.endpoint.label, self._last_block_at or now, now,
                           f"height jump in the stream: {first}..{height - 1} not received (dropped by the node)",
                           self._committed, height, first, height - 1)  # fmt: skip
            self._jobs.put_nowait(("gap", span))
        self._last_block_at = now
        self._advance(height)

    def _advance(self, height: int) -> None:
        if self._committed is None or height > self._committed:
            self._committed = height
        for h in sorted(h for h in self._pending_sets if h - 1 <= height):
            self._pending_sets.discard(h)
            self._jobs.put_nowait(("validators", h))

    def _want_set(self, height: int) -> None:
        if self._committed is not None and height - 1 <= self._committed:
            self._jobs.put_nowait(("validators", height))
        else:
            self._pending_sets.add(height)

    def _emit(self, label: str, rows: Rows) -> None:
        fresh = self._seen.fresh(rows)
        for row in fresh:
            if row["kind"] == kinds.COMMIT_SIG and row.get("validator") is None:
                self._name_absent(row)
            elif row["kind"] == kinds.BLOCK_COMMITTED and row["height"] > (self._observed_height or 0):
                self._observed_height = row["height"]
        if fresh:
            self._buffer.setdefault(label, []).extend(fresh)

    def _name_absent(self, row: Mapping[str, Any]) -> None:
        """An absent signature has no address; the set of its height says whose it is (when known)."""
        i = bisect.bisect_right(self._sets, row["height"], key=lambda s: s[0]) - 1
        index = row.get("validator_index")
        if i >= 0 and isinstance(index, int) and 0 <= index < len(self._sets[i][1]):
            assert isinstance(row, dict)
            row["validator"] = self._sets[i][1][index]

    # --- background work ------------------------------------------------------------------------

    def _active_rpc(self) -> RpcClient | None:
        """The active endpoint's RPC, else the last one that was active (its HTTP side may well answer while
        its websocket reconnects; a failure is counted like any other)."""
        active = next((e for e in self._eps if e.status.active), self._last_active)
        return active.rpc if active is not None else None

    async def _work(self) -> None:
        while True:
            job, arg = await self._jobs.get()
            self._busy = 1
            if job == "gap":
                try:
                    row = await self._backfill.fill(arg, self._active_rpc())
                except asyncio.CancelledError:
                    self._gap_row(await self._backfill.fill(arg, None), arg.label)
                    raise
                self._gap_row(row, arg.label)
            else:
                await self._fetch_set(arg)
            self._busy = 0

    def _gap_row(self, row: Mapping[str, Any], label: str) -> None:
        self._counts["gaps"] += 1
        self._emit(label, [row])

    async def _fetch_set(self, height: int | None) -> None:
        rpc = self._active_rpc()
        if rpc is None:
            return
        try:
            await self._got_set(await rpc.validators(height))
        except RpcError:
            self._counts["validator_errors"] += 1  # the set stays as it was

    async def _got_set(self, vs: ValidatorSet) -> None:
        self._have_set = True
        self._counts["validator_sets"] += 1
        addresses = [v.address for v in vs.validators]
        i = bisect.bisect_left(self._sets, vs.height, key=lambda s: s[0])
        if i < len(self._sets) and self._sets[i][0] == vs.height:
            self._sets[i] = (vs.height, addresses)
        else:
            self._sets.insert(i, (vs.height, addresses))
        del self._sets[:-64]
        if self._on_validator_set is not None:
            try:
                self._on_validator_set(vs.height, vs.validators)
            except ValueError:  # the history refused the set (a malformed member): the one stored stays
                self._counts["validator_errors"] += 1

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(self._flush_interval)
            self._flush()

    def _flush(self) -> None:
        for label in list(self._buffer):
            rows = self._buffer[label]
            if not rows:
                continue
            error = hand_over(self.sink, label, rows, self._listeners, self._counts)
            if error is not None:  # the store refused: keep the rows for the next flush, bounded
                self.last_write_error = error
                del rows[:-MAX_BUFFERED]
                continue
            self._buffer[label] = []
            self._events_total += len(rows)

    async def _shutdown(self) -> None:
        while not self._jobs.empty():  # gaps found but not backfilled: stored as such
            job, arg = self._jobs.get_nowait()
            if job == "gap":
                self._gap_row(await self._backfill.fill(arg, None), arg.label)
        pending = self._awaiting_heights or (
            GapSpan(self._lost[0], self._lost[1], self._clock(), self._lost[2]) if self._lost else None
        )
        if pending is not None:
            pending.end = self._clock()
            if pending.first is None and self._committed is not None:
                pending.first = self._committed
            self._gap_row(await self._backfill.fill(pending, None), pending.label)
        self._lost = self._awaiting_heights = None
        for ep in self._eps:
            ep.status.state = EndpointState.STOPPED
            await ep.rpc.aclose()
        self._flush()
        self.sink.flush()
