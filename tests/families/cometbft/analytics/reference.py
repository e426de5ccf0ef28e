"""Reference computations for the metric tests: plain Python and NumPy over the raw events table.

Nothing here uses bftscope's SQL: deliveries are re-matched from the raw send/receive events (first in,
first out per identical wire bytes; logical keys for WAL runs), then each metric is recomputed with
``np.percentile`` (linear interpolation, the documented method). The tests compare the two.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np

from bftscope.store import DuckDBStore

COLS = "id, node, ts, kind, height, round, step, vote_type, msg_type, validator_index, part_index, peer, msg_key"


@dataclass(frozen=True)
class Ev:
    id: int
    node: int
    ts: int
    kind: str
    height: int | None
    round: int | None
    step: str | None
    vote_type: str | None
    msg_type: str | None
    validator_index: int | None
    part_index: int | None
    peer: str | None
    msg_key: int | None


@dataclass(frozen=True)
class Delivery:
    sender: int
    receiver: int
    msg_type: str
    height: int | None
    vote_type: str | None
    sent: int
    recv: int | None
    send_event: int | None = None  # the ids of the two events paired
    recv_event: int | None = None

    @property
    def latency(self) -> int | None:
        return None if self.recv is None else self.recv - self.sent


def events(store: DuckDBStore, rid: int) -> list[Ev]:
    rows = store.query(f"SELECT {COLS} FROM events WHERE run_id = ? ORDER BY ts, id", [rid])
    return [Ev(*r) for r in rows]


def deliveries(store: DuckDBStore, rid: int) -> list[Delivery]:
    evs = events(store, rid)
    by_p2p = {n.p2p_id: n.node for n in store.nodes(rid) if n.p2p_id}
    sends: dict[tuple[Any, ...], list[Ev]] = defaultdict(list)
    recvs: dict[tuple[Any, ...], list[Ev]] = defaultdict(list)
    for e in evs:
        if e.kind == "p2p_send" and e.peer in by_p2p:
            sends[(e.node, by_p2p[e.peer], e.msg_key)].append(e)
        elif e.kind == "p2p_recv":
            recvs[(by_p2p.get(e.peer), e.node, e.msg_key)].append(e)
    out = []
    for key, ss in sends.items():
        rr = recvs.get(key, [])
        for k, s in enumerate(ss):
            r = rr[k] if k < len(rr) else None
            out.append(Delivery(key[0], key[1], s.msg_type or "", s.height, s.vote_type, s.ts,
                                r.ts if r else None, s.id, r.id if r else None))  # fmt: skip
    # logical matching for nodes whose own messages are recorded but never sent over the wire (WAL runs)
    wire_senders = {e.node for e in evs if e.kind == "p2p_send"}

    def key(e: Ev) -> tuple[Any, ...]:
        return (e.msg_type, e.height, e.round, e.vote_type, e.validator_index, e.part_index)

    own: dict[tuple[Any, ...], Ev] = {}
    for e in evs:
        if e.kind == "msg_internal" and e.node not in wire_senders:
            own.setdefault((e.node, *key(e)), e)  # events are in (ts, id) order: the first is the minimum
    got: dict[tuple[Any, ...], Ev] = {}
    for e in evs:
        if e.kind == "msg_received" and e.peer in by_p2p:
            got.setdefault((by_p2p[e.peer], e.node, *key(e)), e)
    for (sender, receiver, *k), r in got.items():
        o = own.get((sender, *k))
        if o is not None:
            out.append(Delivery(sender, receiver, k[0], k[1], k[3], o.ts, r.ts, o.id, r.id))
    return out


def pct(values: list[float] | np.ndarray, q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=np.float64), q * 100))


def grouped(rows: list[Delivery], *fields: str) -> dict[tuple[Any, ...], np.ndarray]:
    """Latencies in ms of the received deliveries, by the given fields."""
    out: dict[tuple[Any, ...], list[float]] = defaultdict(list)
    for d in rows:
        if d.recv is not None:
            out[tuple(getattr(d, f) for f in fields)].append((d.recv - d.sent) / 1e6)
    return {k: np.asarray(v) for k, v in out.items()}
