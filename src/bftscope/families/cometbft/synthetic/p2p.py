"""The synthetic network's transport: event queue, per-node log buffers, and the p2p layer of every message.

Owns true time and the transport. All times are integer microseconds since the run's start (true
time); node ``i`` writes ``start + clock_offset[i] + t`` in its lines, so the only difference
between the ``Send`` on A and the ``Received bytes`` on B of one message is the injected one-way
delay ``latency[A][B] + flush wait + jitter`` plus the two clocks' offsets — exactly what the
analytics must recover, with no other noise.

The flush wait is CometBFT's ``flush_throttle_timeout`` as its MConnection applies it: the first
message written to an idle connection arms a timer of that length, everything written before it
fires leaves with it. So a throttled link's delay varies between ``latency`` and ``latency +
throttle`` — the first message of a burst waits the whole timer, the ones that join it wait less. A
constant extra delay on every message a node sends would be indistinguishable, to any observer of
the logs, from that node's clock running behind (docs/metrics.md, clock skew); the batching is what
real throttled links look like and what lets the minimum one-way delay see the path's floor.

Why microseconds: CometBFT's logs (as recorded on the reference testnet) carry microsecond stamps,
and integer time keeps "received − sent = injected delay" exact after formatting.

Lines are buffered per node with a sort key (time, then generation order) and written once the
event queue has moved past them: nothing generated later can be earlier than the event being
processed, so every line older than the queue head is final.
"""

from __future__ import annotations

import base64
import heapq
import random
from bisect import bisect_left
from collections.abc import Callable, Sequence
from operator import itemgetter
from typing import Any, TextIO

from bftscope.families.cometbft.synthetic.lines import Wire, rfc3339

__all__ = ["Msg", "Net"]

_SEQ_BITS = 40
_KEY = itemgetter(0)

# Channel of each message type (cometbft internal/consensus/reactor.go).
CHANNEL = {
    "new_round_step": 0x20,
    "has_vote": 0x20,
    "has_proposal_block_part": 0x20,
    "new_valid_block": 0x20,
    "proposal": 0x21,
    "block_part": 0x21,
    "vote": 0x22,
}
_EOF = '"eof":true,'
_MAX_PACKET = 1024  # MConnection max_packet_msg_payload_size: a message is read in packets of this size


class Msg:
    """One consensus message as it appears on the wire and in the receiver's ``Receive`` line."""

    __slots__ = ("b64", "channel", "hex", "mtype", "packets", "recv_text", "size")

    def __init__(self, mtype: str, raw: bytes, recv_text: str) -> None:
        self.mtype = mtype
        self.channel = CHANNEL[mtype]
        self.hex = raw.hex().upper()
        self.b64 = base64.b64encode(raw).decode("ascii")
        self.size = len(raw)
        # recv_text is already JSON-escaped (it is written between quotes as is).
        self.recv_text = recv_text
        ch = self.channel
        if len(raw) <= _MAX_PACKET:
            self.packets = [f'{{"channel_id":{ch},"eof":true,"data":"{self.b64}"}}']
        else:  # fragments: only the last packet has eof (omitempty drops "eof":false)
            chunks = [raw[k : k + _MAX_PACKET] for k in range(0, len(raw), _MAX_PACKET)]
            last = len(chunks) - 1
            self.packets = [
                f'{{"channel_id":{ch},{_EOF if k == last else ""}"data":"{base64.b64encode(c).decode("ascii")}"}}'
                for k, c in enumerate(chunks)
            ]


class Net:
    """Event queue + transport for ``n`` fully meshed nodes. Subclassed by the consensus engine."""

    def __init__(
        self,
        n: int,
        *,
        latency_us: list[list[int]],
        throttle_us: list[int],
        gossip_us: list[int],
        drop: list[list[float]],
        jitter_us: float,
        base_us: list[int],
        node_ids: list[str],
        wires: list[list[Wire | None]],
        seed: int,
    ) -> None:
        self.n = n
        self.latency_us = latency_us
        self.throttle_us = throttle_us
        self.gossip_us = gossip_us
        self.drop = drop
        self.any_drop = any(p > 0 for row in drop for p in row)
        self.jitter_us = jitter_us
        # Jitter is drawn per connection and reused while messages follow each other closely:
        # a TCP connection delivers in order, and a fresh draw only after a gap wider than the
        # whole jitter range can never overtake the message before it.
        self.jitter_window = int(6 * jitter_us) + 1
        self.last_jitter: list[list[tuple[int, int]]] = [[(-(1 << 60), 0)] * n for _ in range(n)]
        # flush_at[i][j]: when the flush timer armed on connection i→j fires (in the past: not armed)
        self.flush_at: list[list[int]] = [[-1] * n for _ in range(n)]
        self.base_us = base_us
        self.node_ids = node_ids
        self.wires = wires
        self.peers = [[j for j in range(n) if j != i] for i in range(n)]
        # Separate streams: transport noise must not shift consensus randomness (and vice versa),
        # so that e.g. changing the drop rate keeps identities, hashes and gossip phases.
        self.net_rng = random.Random(f"net/{seed}")
        self.rng = random.Random(f"consensus/{seed}")
        self.queue: list[tuple[int, int, Callable[..., None], tuple[Any, ...]]] = []
        self.qseq = 0
        self.now = 0
        self.bufs: list[list[tuple[int, str]]] = [[] for _ in range(n)]
        self.lseq = 0
        self.sent: dict[tuple[int, int, str], list[int]] = {}
        # know[i][j]: height -> earliest arrival at i of a NewRoundStep of j for that height;
        # know_r[i][j]: (height, round) -> likewise. Gossip towards j waits on these (as CometBFT's
        # reactor only sends a peer what its PeerState says it can use).
        self.know: list[list[dict[int, int]]] = [[{} for _ in range(n)] for _ in range(n)]
        self.know_r: list[list[dict[tuple[int, int], int]]] = [[{} for _ in range(n)] for _ in range(n)]
        self.pending: list[list[list[tuple[int, int, int, Callable[..., None], tuple[Any, ...]]]]] = [
            [[] for _ in range(n)] for _ in range(n)
        ]

    # --- queue -------------------------------------------------------------------------------

    def at(self, t: int, fn: Callable[..., None], *args: Any) -> None:
        if t < self.now:  # an event in the past would run "now" with a clock that went backwards
            raise AssertionError(f"{fn.__name__} scheduled at {t} < now {self.now}")
        self.qseq += 1
        heapq.heappush(self.queue, (t, self.qseq, fn, args))

    def run(self, flush_every: int, on_flush: Callable[[int], None]) -> None:
        """Process events in time order until the queue is empty, flushing every ``flush_every`` events."""
        queue = self.queue
        count = 0
        while queue:
            t, _, fn, args = heapq.heappop(queue)
            self.now = t
            fn(*args)
            count += 1
            if count >= flush_every:
                count = 0
                on_flush(queue[0][0] if queue else t)

    # --- lines -------------------------------------------------------------------------------

    def ts(self, i: int, t: int) -> str:
        return rfc3339(self.base_us[i] + t)

    def emit(self, i: int, t: int, line: str) -> None:
        self.lseq += 1
        self.bufs[i].append(((t << _SEQ_BITS) | self.lseq, line))

    def flush(self, upto: int | None, outs: Sequence[TextIO]) -> int:
        """Write every buffered line older than ``upto`` (all when None); returns characters written."""
        written = 0
        limit = None if upto is None else upto << _SEQ_BITS
        for i, buf in enumerate(self.bufs):
            if not buf:
                continue
            buf.sort(key=_KEY)
            cut = len(buf) if limit is None else bisect_left(buf, limit, key=_KEY)
            if cut:
                text = "".join([line for _, line in buf[:cut]])
                outs[i].write(text)
                written += len(text)
                del buf[:cut]
        return written

    # --- transport ---------------------------------------------------------------------------

    def delay(self, i: int, j: int, t: int) -> int:
        """One-way delivery time i→j of a message sent at t: i's flush wait + latency + jitter.

        The flush wait runs to the connection's armed timer, arming one of ``throttle`` when there is
        none (see the module docstring). Jitter is normal with σ = ``jitter_us``, clipped symmetrically
        (at 3σ, and at 90 % of the latency), so its median is 0.
        """
        wait = 0
        throttle = self.throttle_us[i]
        if throttle:
            fire = self.flush_at[i][j]
            if t >= fire:
                fire = self.flush_at[i][j] = t + throttle
            wait = fire - t
        base = self.latency_us[i][j] + wait
        sigma = self.jitter_us
        if not sigma:
            return base
        # keyed on the departure: messages leaving in one flush share the connection's jitter
        depart = t + wait
        last_t, jit = self.last_jitter[i][j]
        if abs(depart - last_t) >= self.jitter_window:
            cap = min(3.0 * sigma, 0.9 * self.latency_us[i][j])
            x = self.net_rng.gauss(0.0, sigma)
            jit = round(cap if x > cap else -cap if x < -cap else x)
        self.last_jitter[i][j] = (depart, jit)
        return base + jit

    def count(self, i: int, j: int, mtype: str, dropped: bool) -> None:
        key = (i, j, mtype)
        c = self.sent.get(key)
        if c is None:
            c = self.sent[key] = [0, 0]
        c[0] += 1
        if dropped:
            c[1] += 1

    def transmit(self, i: int, j: int, t: int, msg: Msg, send_kind: str = "Send", force: bool = False) -> int | None:
        """Log ``send_kind`` of ``msg`` on i at t and, unless lost, its arrival on j.

        Returns the arrival time (of ``Received bytes``), or None when the message was dropped.
        """
        w = self.wires[i][j]
        assert w is not None
        ch = msg.channel
        self.lseq += 1
        self.bufs[i].append(
            (
                (t << _SEQ_BITS) | self.lseq,
                f'{{"_msg":"{send_kind}","channel":{ch},{w.conn_head}{msg.hex}{w.peer_tail}'
                f'{rfc3339(self.base_us[i] + t)}"}}\n',
            )
        )
        if not force and self.any_drop and self.net_rng.random() < self.drop[i][j]:
            self.count(i, j, msg.mtype, True)
            return None
        self.count(i, j, msg.mtype, False)
        ta = t + self.delay(i, j, t)
        self._receive_lines(j, i, ta, msg)
        return ta

    def _receive_lines(self, j: int, i: int, ta: int, msg: Msg) -> None:
        """The p2p lines of node j receiving msg from i at ta: Read PacketMsg(s), Received bytes, Receive."""
        w = self.wires[j][i]
        assert w is not None
        base = self.base_us[j]
        ts = rfc3339(base + ta)
        ts2 = rfc3339(base + ta + 2)  # the reactor's Receive runs right after, on the same goroutine
        buf = self.bufs[j]
        seq = self.lseq
        key = ta << _SEQ_BITS
        for packet in msg.packets:
            seq += 1
            buf.append((key | seq, f'{{"_msg":"Read PacketMsg",{w.packet_head}{packet}{w.packet_tail}{ts}"}}\n'))
        ch = msg.channel
        buf.append(
            (
                key | (seq + 1),
                f'{{"_msg":"Received bytes","chID":{ch},{w.recv_head}{msg.b64}{w.peer_tail}{ts}"}}\n',
            )
        )
        buf.append(
            (
                ((ta + 2) << _SEQ_BITS) | (seq + 2),
                f'{{"_msg":"Receive","chId":{ch},"level":"debug","module":"consensus","msg":"{msg.recv_text}'
                f'{w.src_tail}{ts2}"}}\n',
            )
        )
        self.lseq = seq + 2

    def broadcast(self, i: int, t: int, msg: Msg, send_kind: str = "Send") -> list[int | None]:
        """Send msg to every peer (Switch.Broadcast / TryBroadcast); arrival times by peer order."""
        return [self.transmit(i, j, t, msg, send_kind) for j in self.peers[i]]

    # --- what each node knows of its peers' heights --------------------------------------------

    def learn(self, i: int, j: int, height: int, round_: int, t_arr: int) -> None:
        """i will know from t_arr that j is at (height, round); release sends that waited for it."""
        kh = self.know[i][j]
        if kh.get(height, t_arr + 1) > t_arr:
            kh[height] = t_arr
        kr = self.know_r[i][j]
        if kr.get((height, round_), t_arr + 1) > t_arr:
            kr[(height, round_)] = t_arr
        pend = self.pending[i][j]
        if pend:
            keep = []
            for item in pend:
                h, r, not_before, fn, args = item
                if h == height and (r < 0 or r == round_):
                    self.at(max(t_arr, not_before) + self.phase(i), fn, *args)
                elif h < height:
                    continue  # j moved past that height: CometBFT's gossip would not send it either
                else:
                    keep.append(item)
            self.pending[i][j] = keep
        if len(kh) > 8:  # keep the last few heights only
            for old in sorted(kh)[:-4]:
                del kh[old]
            for key in [k for k in kr if k[0] < height - 3]:
                del kr[key]

    def known_at(self, i: int, j: int, height: int, round_: int = -1) -> int | None:
        """When i learns (or learnt) that j is at height (and round, if ≥ 0); None if not yet sent."""
        if round_ < 0:
            return self.know[i][j].get(height)
        return self.know_r[i][j].get((height, round_))

    def moved_past(self, i: int, j: int, height: int, t: int) -> bool:
        """Whether i knows at t that j is already at a later height."""
        arr = self.know[i][j].get(height + 1)
        return arr is not None and arr <= t

    def when_known(
        self, i: int, j: int, height: int, round_: int, not_before: int, fn: Callable[..., None], *args: Any
    ) -> None:
        """Call fn(*args) once i knows j is at (height[, round]) and i's gossip routine wakes up.

        ``not_before``: when the thing to send became available on i (gossip routines poll for it).
        """
        arr = self.known_at(i, j, height, round_)
        if arr is None:
            self.pending[i][j].append((height, round_, not_before, fn, args))
        else:
            self.at(max(arr, not_before) + self.phase(i), fn, *args)

    def phase(self, i: int) -> int:
        """Wait until i's per-peer gossip routine next wakes (it sleeps peer_gossip_sleep_duration)."""
        g = self.gossip_us[i]
        return self.rng.randrange(g) if g > 0 else 0
