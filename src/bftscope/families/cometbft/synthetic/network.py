"""Synthetic network generator: writes an N-node CometBFT 1.x JSON debug log set and the truth it injected.

Real multi-node debug logs cannot ship with the project, yet the demo, the benchmarks and the
analytics tests need them — and need to know the right answers. :func:`simulate` runs a
discrete-event simulation of a full-mesh CometBFT network (true time, one clock per node) driven by
a one-way latency matrix, and writes ``node{i}.log`` per node plus ``ground_truth.json``: the
effective latency matrix, clock offsets, per-height rounds/proposers/commit times, silent and
missing votes, lost messages, and per-pair message counts.

This module owns the public surface: :class:`SimConfig` (JSON-serialisable), :func:`build_config`
(the CLI's knobs), :meth:`SimConfig.misconfigured` (the "misconfigured node0" scenario of the
reference analyzer's example configs), node identities, and :class:`GroundTruth`. The protocol lives
in :mod:`.consensus`, the transport in :mod:`.p2p`, the text in :mod:`.lines`.

Guarantee for the analytics: for every delivered message, ``Received bytes`` ts − ``Send`` ts equals
``latency[s][r] + flush wait + jitter + offset[r] − offset[s]`` to the microsecond, where the flush
wait is between 0 and ``flush_throttle[s]`` (CometBFT's flush timer, see :mod:`.p2p`); with
``jitter_ms = 0``, no throttle and no offsets it is exactly ``effective_latency_ms[s][r]``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
import re
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from bftscope.families.cometbft.synthetic.consensus import Engine
from bftscope.families.cometbft.synthetic.lines import Wire, rfc3339
from bftscope.families.cometbft.synthetic.model import Setup

__all__ = ["MISCONFIGURED", "NORMAL", "GroundTruth", "SimConfig", "build_config", "simulate"]

Duration = float | str  # milliseconds, or a Go duration string ("3s", "500ms")
PerNode = Duration | list[Duration]

# The reference analyzer's example scenario (analyzer-example-configs/diff.diff): node0 runs with
# flush_throttle_timeout 200ms / timeout_commit 2s / peer_gossip_sleep_duration 400ms where the
# others use 10ms / 1s / 100ms.
NORMAL = {"flush_throttle_ms": 10.0, "timeout_commit": 1000.0, "gossip_sleep_ms": 100.0}
MISCONFIGURED = {"flush_throttle_ms": 200.0, "timeout_commit": 2000.0, "gossip_sleep_ms": 400.0}

_GO_UNITS = {"ns": 1e-6, "us": 1e-3, "µs": 1e-3, "μs": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


def _ms(value: Duration) -> float:
    """Milliseconds of a number (already ms) or a Go duration string."""
    if isinstance(value, int | float):
        return float(value)
    parts = re.findall(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)", value.strip())
    if not parts or "".join(a + b for a, b in parts) != value.strip().lstrip("+"):
        raise ValueError(f"not a duration: {value!r}")
    return sum(float(a) * _GO_UNITS[b] for a, b in parts)


@dataclass
class SimConfig:
    """What to simulate. Per-node fields take one value for all nodes or a list of ``nodes`` values.

    Durations are milliseconds (or Go duration strings such as ``"3s"``). ``latency_ms`` is the
    one-way latency matrix (row = sender); when None it is generated from ``base_latency_ms`` plus
    a per-pair uniform spread in ``[0, latency_spread_ms)``. ``heights`` is ignored when
    ``target_bytes`` is set: the run then adds heights until the logs reach about that size.
    """

    nodes: int = 4
    heights: int = 20
    seed: int = 1
    start_time: str | int = "2025-06-08T01:24:18Z"  # RFC 3339, or Unix nanoseconds
    latency_ms: list[list[float]] | None = None
    base_latency_ms: float = 20.0
    latency_spread_ms: float = 30.0
    symmetric_latency: bool = True
    jitter_ms: float = 0.5  # σ of the per-message normal jitter (clipped at 3σ)
    clock_offset_ms: list[float] | None = None  # node i logs true time + offset[i]
    timeout_propose: PerNode = 3000.0
    timeout_propose_delta: PerNode = 500.0
    timeout_prevote: PerNode = 1000.0
    timeout_prevote_delta: PerNode = 500.0
    timeout_precommit: PerNode = 1000.0
    timeout_precommit_delta: PerNode = 500.0
    timeout_commit: PerNode = 1000.0
    flush_throttle_ms: PerNode = 0.0  # extra delay of every message the node sends
    gossip_sleep_ms: PerNode = 100.0  # peer_gossip_sleep_duration: delay before gossiping new data
    # probability that a p2p message is lost (row = sender); lost proposals, parts and votes are
    # gossiped again by a peer that has them. NewRoundStep messages are never lost (see consensus.py).
    drop_rate: float | list[list[float]] = 0.0
    silent_validators: list[int] = field(default_factory=list)
    round_escalations: list[int] = field(default_factory=list)
    validator_power: list[int] | None = None  # default: 10 each
    block_parts: int = 1
    target_bytes: int | None = None
    chain_id: str | None = None  # default: derived from the seed
    misconfigured_node: int | None = None  # set by misconfigured(); informational

    def misconfigured(self, node: int) -> SimConfig:
        """A copy where ``node`` has the misconfigured values and every other node the normal ones."""
        if not 0 <= node < self.nodes:
            raise ValueError(f"node {node} out of range")
        cfg = dataclasses.replace(self, misconfigured_node=node)
        for key, normal in NORMAL.items():
            values: list[Duration] = [normal] * self.nodes
            values[node] = MISCONFIGURED[key]
            setattr(cfg, key, values)
        return cfg

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SimConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def build_config(
    *,
    nodes: int = 4,
    heights: int = 50,
    seed: int = 1,
    base_latency_ms: float = 50.0,
    spread_ms: float = 100.0,
    slow_node: int | None = None,
    silent: list[int] | tuple[int, ...] = (),
    drop_rate: float = 0.0,
    escalations: list[int] | tuple[int, ...] = (),
    target_bytes: int | None = None,
    jitter_ms: float | None = None,
    clock_skew_ms: float = 0.0,
    clock_offsets: dict[int, float] | None = None,
) -> SimConfig:
    """The CLI's knobs → a config. ``slow_node`` gets the misconfigured scenario; ``clock_skew_ms``
    draws each node's clock offset uniformly in ±skew; ``clock_offsets`` (node index → ms, added to
    any drawn offset) sets chosen nodes' clocks; jitter defaults to 2 % of the base latency."""
    offsets = None
    if clock_skew_ms:
        rng = random.Random(f"skew/{seed}")
        offsets = [round(rng.uniform(-clock_skew_ms, clock_skew_ms), 3) for _ in range(nodes)]
    if clock_offsets:
        bad = sorted(k for k in clock_offsets if not 0 <= k < nodes)
        if bad:
            raise ValueError(f"clock offset for node {bad[0]}: the network has nodes 0–{nodes - 1}")
        offsets = offsets or [0.0] * nodes
        for k, v in clock_offsets.items():
            offsets[k] = round(offsets[k] + float(v), 3)
    cfg = SimConfig(
        nodes=nodes,
        heights=heights,
        seed=seed,
        base_latency_ms=base_latency_ms,
        latency_spread_ms=spread_ms,
        jitter_ms=jitter_ms if jitter_ms is not None else round(0.02 * base_latency_ms, 3),
        clock_offset_ms=offsets,
        drop_rate=drop_rate,
        silent_validators=list(silent),
        round_escalations=list(escalations),
        target_bytes=target_bytes,
    )
    return cfg.misconfigured(slow_node) if slow_node is not None else cfg


@dataclass
class GroundTruth:
    """What the simulation injected; ``ground_truth.json`` holds exactly :meth:`to_dict`."""

    config: dict[str, Any]
    chain_id: str
    genesis_time: str
    nodes: list[dict[str, Any]]
    latency_ms: list[list[float]]
    # latency + the sender's whole flush throttle: the delay of a message that arms the flush timer
    # (the first after an idle gap); messages that join an armed timer wait less, down to latency_ms
    effective_latency_ms: list[list[float]]
    clock_offset_ms: list[float]
    heights: list[dict[str, Any]]
    messages: list[dict[str, Any]]  # {"from", "to", "type", "sent", "dropped"}
    files: dict[str, int]  # file name -> bytes

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def load(cls, path: str | Path) -> GroundTruth:
        return cls(**json.loads(Path(path).read_text()))

    def summary(self) -> str:
        extra_rounds = sum(h["commit_round"] for h in self.heights)
        dropped = sum(m["dropped"] for m in self.messages)
        size = sum(self.files.values())
        return (
            f"{len(self.heights)} heights, {len(self.nodes)} nodes, {size / 1e6:.1f} MB of logs, "
            f"{extra_rounds} extra rounds, {dropped} lost messages"
        )


def _start_us(value: str | int) -> int:
    if isinstance(value, int):
        return value // 1000
    dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return int(dt.timestamp()) * 1_000_000 + dt.microsecond


def _per_node(value: PerNode, n: int, name: str) -> list[float]:
    if isinstance(value, list):
        if len(value) != n:
            raise ValueError(f"{name}: {len(value)} values for {n} nodes")
        return [_ms(v) for v in value]
    return [_ms(value)] * n


def _us(values: list[float]) -> list[int]:
    return [round(v * 1000) for v in values]


def _latency(cfg: SimConfig) -> list[list[float]]:
    n = cfg.nodes
    if cfg.latency_ms is not None:
        m = cfg.latency_ms
        if len(m) != n or any(len(row) != n for row in m):
            raise ValueError(f"latency_ms must be {n}×{n}")
        if any(m[i][j] < 0 for i in range(n) for j in range(n)):
            raise ValueError("latency_ms has a negative entry")
        return [[0.0 if i == j else float(m[i][j]) for j in range(n)] for i in range(n)]
    rng = random.Random(f"latency/{cfg.seed}")
    out = [[0.0] * n for _ in range(n)]
    for i in range(n):
        for j in range(n):
            if i == j or (cfg.symmetric_latency and j < i):
                continue
            out[i][j] = round(cfg.base_latency_ms + rng.random() * cfg.latency_spread_ms, 3)
            if cfg.symmetric_latency:
                out[j][i] = out[i][j]
    return out


def _identities(cfg: SimConfig) -> dict[str, Any]:
    """Keys, addresses, ports and connections, all from the seed (same seed ⇒ same network)."""
    n, rng = cfg.nodes, random.Random(f"identity/{cfg.seed}")
    pub = [rng.randbytes(32) for _ in range(n)]
    node_pub = [rng.randbytes(32) for _ in range(n)]
    addrs = [hashlib.sha256(p).digest()[:20].hex().upper() for p in pub]  # ed25519 address rule
    ids = [hashlib.sha256(p).digest()[:20].hex() for p in node_pub]
    chain = cfg.chain_id or "chain-" + "".join(rng.choice(string.ascii_letters) for _ in range(6))
    listen = [26656 + 10 * i for i in range(n)]
    pairs = [(a, b) for a in range(n) for b in range(a + 1, n)]
    ephemeral = rng.sample(range(49152, 65536), len(pairs)) if len(pairs) <= 16384 else [0] * len(pairs)
    wires: list[list[Wire | None]] = [[None] * n for _ in range(n)]
    for (a, b), port in zip(pairs, ephemeral, strict=True):
        dialer, listener = (a, b) if rng.random() < 0.5 else (b, a)
        port = port or 49152 + (a * n + b) % 16384
        wires[dialer][listener] = Wire(ids[listener], listen[listener], outbound=True)
        wires[listener][dialer] = Wire(ids[dialer], port, outbound=False)
    return {
        "pub": [p.hex().upper() for p in pub],
        "addrs": addrs,
        "ids": ids,
        "chain_id": chain,
        "listen": listen,
        "wires": wires,
        "validators_hash": rng.randbytes(32).hex().upper(),
        "consensus_hash": rng.randbytes(32).hex().upper(),
    }


def _validate(cfg: SimConfig, powers: list[int]) -> None:
    n = cfg.nodes
    if n < 1:
        raise ValueError("nodes must be ≥ 1")
    if cfg.target_bytes is None and cfg.heights < 1:
        raise ValueError("heights must be ≥ 1 (or set target_bytes)")
    if len(powers) != n or any(p <= 0 for p in powers):
        raise ValueError("validator_power needs one positive power per node")
    bad = [v for v in cfg.silent_validators if not 0 <= v < n]
    if bad:
        raise ValueError(f"silent validator index out of range: {bad}")
    speaking = sum(p for v, p in enumerate(powers) if v not in set(cfg.silent_validators))
    if speaking * 3 <= sum(powers) * 2:
        raise ValueError("silent validators hold ≥ 1/3 of the power: the chain could not commit")
    if cfg.block_parts < 1:
        raise ValueError("block_parts must be ≥ 1")


def _drop_matrix(cfg: SimConfig) -> list[list[float]]:
    n = cfg.nodes
    d = cfg.drop_rate
    m = [[float(d)] * n for _ in range(n)] if isinstance(d, int | float) else [[float(x) for x in r] for r in d]
    if len(m) != n or any(len(r) != n for r in m) or any(not 0 <= x < 1 for r in m for x in r):
        raise ValueError(f"drop_rate must be a probability in [0, 1) or a {n}×{n} matrix of them")
    return m


def simulate(
    config: SimConfig, out_dir: str | Path, *, progress: Callable[[int, int], None] | None = None
) -> GroundTruth:
    """Write ``node{i}.log`` for every node and ``ground_truth.json`` into ``out_dir``.

    ``progress(heights_committed_by_all, bytes_written)`` is called now and then.
    """
    cfg, n = config, config.nodes
    powers = list(cfg.validator_power) if cfg.validator_power is not None else [10] * n
    _validate(cfg, powers)
    ident = _identities(cfg)
    latency = _latency(cfg)
    offsets = list(cfg.clock_offset_ms) if cfg.clock_offset_ms is not None else [0.0] * n
    if len(offsets) != n:
        raise ValueError(f"clock_offset_ms: {len(offsets)} values for {n} nodes")
    throttle = _per_node(cfg.flush_throttle_ms, n, "flush_throttle_ms")
    commit = _per_node(cfg.timeout_commit, n, "timeout_commit")
    start = _start_us(cfg.start_time)
    setup = Setup(
        n=n,
        seed=cfg.seed,
        chain_id=ident["chain_id"],
        genesis_us=start - 30_000_000,
        base_us=[start + round(o * 1000) for o in offsets],
        latency_us=[_us(row) for row in latency],
        throttle_us=_us(throttle),
        gossip_us=_us(_per_node(cfg.gossip_sleep_ms, n, "gossip_sleep_ms")),
        drop=_drop_matrix(cfg),
        jitter_us=max(0.0, cfg.jitter_ms) * 1000,
        node_ids=ident["ids"],
        addrs=ident["addrs"],
        pub_keys=ident["pub"],
        wires=ident["wires"],
        powers=powers,
        silent=frozenset(cfg.silent_validators),
        escalations=frozenset(cfg.round_escalations),
        propose_us=_us(_per_node(cfg.timeout_propose, n, "timeout_propose")),
        propose_delta_us=_us(_per_node(cfg.timeout_propose_delta, n, "timeout_propose_delta")),
        prevote_us=_us(_per_node(cfg.timeout_prevote, n, "timeout_prevote")),
        prevote_delta_us=_us(_per_node(cfg.timeout_prevote_delta, n, "timeout_prevote_delta")),
        precommit_us=_us(_per_node(cfg.timeout_precommit, n, "timeout_precommit")),
        precommit_delta_us=_us(_per_node(cfg.timeout_precommit_delta, n, "timeout_precommit_delta")),
        commit_us=_us(commit),
        block_parts=cfg.block_parts,
        max_height=None if cfg.target_bytes is not None else cfg.heights,
        validators_hash=ident["validators_hash"],
        consensus_hash=ident["consensus_hash"],
    )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    engine = Engine(setup)
    names = [f"node{i}.log" for i in range(n)]
    files = [open(out / name, "w", encoding="utf-8", newline="\n", buffering=1 << 22) for name in names]  # noqa: SIM115
    try:
        engine.run_to_end(files, cfg.target_bytes, progress)
    finally:
        for f in files:
            f.close()
    truth = _truth(cfg, engine, setup, ident, latency, throttle, offsets, commit, powers, start)
    truth.files = {name: (out / name).stat().st_size for name in names}
    (out / "ground_truth.json").write_text(json.dumps(truth.to_dict(), indent=1) + "\n")
    return truth


def _truth(
    cfg: SimConfig,
    engine: Engine,
    setup: Setup,
    ident: dict[str, Any],
    latency: list[list[float]],
    throttle: list[float],
    offsets: list[float],
    commit: list[float],
    powers: list[int],
    start_us: int,
) -> GroundTruth:
    n = cfg.nodes
    gossip = _per_node(cfg.gossip_sleep_ms, n, "gossip_sleep_ms")
    nodes = [
        {
            "index": i,
            "moniker": f"node{i}",
            "file": f"node{i}.log",
            "node_id": ident["ids"][i],
            "validator_address": ident["addrs"][i],
            "validator_index": i,
            "pub_key": ident["pub"][i],
            "listen_port": ident["listen"][i],
            "power": powers[i],
            "clock_offset_ms": offsets[i],
            "silent": i in setup.silent,
            "timeout_commit_ms": commit[i],
            "flush_throttle_ms": throttle[i],
            "gossip_sleep_ms": gossip[i],
            "misconfigured": cfg.misconfigured_node == i,
        }
        for i in range(n)
    ]
    last = max(engine.commits) if engine.commits else 0
    heights = []
    for h in range(1, last + 1):
        per_node = engine.commits.get(h, {})
        blk = engine.blocks.get(h)
        if blk is None or len(per_node) < n:
            break
        commit_round = min(c["round"] for c in per_node.values())
        top = max(c["round"] for c in per_node.values())
        signed: dict[str, dict[str, list[int]]] = {"prevote": {}, "precommit": {}}
        for r in range(top + 1):
            for vtype, name in ((1, "prevote"), (2, "precommit")):
                signed[name][str(r)] = sorted(engine.signed.get((h, r, vtype), []))
        nxt = engine.blocks.get(h + 1)
        heights.append(
            {
                "height": h,
                "rounds": commit_round + 1,
                "commit_round": commit_round,
                "proposers": [engine.proposer(h, r) for r in range(top + 1)],
                "proposals": [
                    {"round": r, **engine.proposals[(h, r)]} for r in range(top + 1) if (h, r) in engine.proposals
                ],
                "proposer": engine.proposer(h, commit_round),
                "block_hash": blk.hash_hex,
                "block_time": rfc3339(blk.time_us),
                "escalated": h in setup.escalations,
                "commits": [
                    {"node": i, "round": c["round"], "ts": c["ts"], "true_time": rfc3339(start_us + c["true_us"])}
                    for i, c in sorted(per_node.items())
                ],
                "signed": signed,
                "missing_votes": {
                    name: [v for v in range(n) if v not in signed[name][str(commit_round)]]
                    for name in ("prevote", "precommit")
                },
                "absent_in_commit": nxt.absent if nxt is not None else None,
                "dropped": engine.drops.get(h, []),
            }
        )
    messages = [
        {"from": i, "to": j, "type": t, "sent": c[0], "dropped": c[1]} for (i, j, t), c in sorted(engine.sent.items())
    ]
    return GroundTruth(
        config=cfg.to_dict(),
        chain_id=setup.chain_id,
        genesis_time=rfc3339(setup.genesis_us),
        nodes=nodes,
        latency_ms=latency,
        effective_latency_ms=[
            [0.0 if i == j else round(latency[i][j] + throttle[i], 3) for j in range(n)] for i in range(n)
        ],
        clock_offset_ms=offsets,
        heights=heights,
        messages=messages,
        files={},
    )
