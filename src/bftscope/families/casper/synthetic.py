"""A generated Casper network seen by several nodes: :func:`generate` → per-node event streams + the ground truth.

One chain is made first — blocks with proposers drawn by stake weight, eras of ``era_blocks`` blocks whose
last block carries ``era_end`` with ``next_era_validator_weights`` (as a map or as a list, both real shapes)
followed by the era's ``Step``; deploys accepted, then processed in a block (success or failure) or expired;
a finality signature of each validator for each block (a few missing); now and then a fault. Then each node
sees that same content in its own order (neighbours swapped: a ``DeployProcessed`` or a signature before its
block), with its own ids (each node's u32 counter starts elsewhere) and a few events sent twice, and ends with
``Shutdown``. Payloads have the shapes of the real node events (``casper-sse`` fixtures: the same keys at
every level), so what the decoder, the store and the API see is what a node sends.

The truth is every entity key by type (as the decoder spells keys) and, per node, its Shutdown's id and its
number of events: a store fed with every stream must hold exactly these.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

__all__ = ["Synthetic", "generate"]

_GENESIS = datetime(2024, 3, 1, tzinfo=UTC)


@dataclass
class Synthetic:
    """``streams[k]``: node k's payloads in its order (ids ``first_ids[k]``, ``first_ids[k] + 1``, …);
    ``truth``: entity keys by type; ``shutdown_ids[k]``: the id of node k's Shutdown."""

    streams: list[list[bytes]]
    first_ids: list[int]
    truth: dict[str, set[str]] = field(default_factory=dict)
    shutdown_ids: list[int] = field(default_factory=list)
    heights: dict[str, int] = field(default_factory=dict)  # block hash → height

    @property
    def total(self) -> int:
        return sum(len(s) for s in self.streams)


def _ts(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


class _Chain:
    def __init__(self, rng: random.Random, validators: int) -> None:
        self.rng = rng
        self.validators = [self.key() for _ in range(validators)]
        self.weights = {v: rng.randint(1, 50) * 10**15 for v in self.validators}
        self.events: list[tuple[str, str, bytes]] = []  # (type, key, payload) in chain order
        self.heights: dict[str, int] = {}

    def hex(self, n: int = 32) -> str:
        return self.rng.getrandbits(n * 8).to_bytes(n, "big").hex()

    def key(self) -> str:
        return "01" + self.hex()

    def add(self, kind: str, key: str, body: Any) -> None:
        self.events.append((kind, key, orjson.dumps({kind: body})))

    def deploy(self, t: datetime) -> dict[str, Any]:
        account, amount = self.key(), str(self.rng.randint(1, 10**6) * 10**9)
        d: dict[str, Any] = {
            "hash": self.hex(),
            "header": {"account": account, "timestamp": _ts(t), "ttl": self.rng.choice(["30m", "1h", "2h 30m"]),
                       "gas_price": 1, "body_hash": self.hex(), "dependencies": [], "chain_name": "casper-synthetic"},
            "payment": {"ModuleBytes": {"module_bytes": "", "args": [
                ["amount", {"cl_type": "U512", "bytes": "0400e1f505", "parsed": "100000000"}]]}},
            "session": {"Transfer": {"args": [["amount", {"cl_type": "U512", "bytes": "05005550b405",
                                                          "parsed": amount}]]}},
            "approvals": [{"signer": account, "signature": "01" + self.hex(64)}],
        }  # fmt: skip
        self.add("DeployAccepted", d["hash"], d)
        return d

    def processed(self, d: dict[str, Any], block_hash: str) -> None:
        ok = self.rng.random() < 0.9
        result: dict[str, Any] = {"effect": {"operations": [], "transforms": [
            {"key": "account-hash-" + self.hex(), "transform": "Identity"}]}, "transfers": [],
            "cost": str(self.rng.randint(10**7, 10**11))}  # fmt: skip
        if not ok:
            result["error_message"] = "User error: 1"
        h = d["header"]
        self.add("DeployProcessed", d["hash"], {
            "deploy_hash": d["hash"], "account": h["account"], "timestamp": h["timestamp"], "ttl": h["ttl"],
            "dependencies": [], "block_hash": block_hash, "execution_result": {"Success" if ok else "Failure": result},
        })  # fmt: skip

    def block(self, height: int, era: int, parent: str, t: datetime, deploys: list[str], era_end: bool) -> str:
        block_hash = self.hex()
        end: dict[str, Any] | None = None
        if era_end:
            weights = {v: str(w + self.rng.randint(0, 10**12)) for v, w in self.weights.items()}
            as_map = era % 2 == 0  # both real shapes: a map, and a list of {validator, weight}
            end = {"era_report": {"equivocators": [], "inactive_validators": [],
                                  "rewards": {v: "1000" for v in self.validators} if as_map
                                  else [{"validator": v, "amount": "1000"} for v in self.validators]},
                   "next_era_validator_weights": weights if as_map
                   else [{"validator": v, "weight": w} for v, w in weights.items()]}  # fmt: skip
        proposer = self.rng.choices(self.validators, [self.weights[v] for v in self.validators])[0]
        self.add("BlockAdded", block_hash, {"block_hash": block_hash, "block": {
            "hash": block_hash,
            "header": {"parent_hash": parent, "state_root_hash": self.hex(), "body_hash": self.hex(),
                       "random_bit": self.rng.random() < 0.5, "accumulated_seed": self.hex(), "era_end": end,
                       "timestamp": _ts(t), "era_id": era, "height": height, "protocol_version": "1.5.6"},
            "body": {"proposer": proposer, "deploy_hashes": deploys, "transfer_hashes": []},
            "proofs": []}})  # fmt: skip
        self.heights[block_hash] = height
        return block_hash


def _chain(rng: random.Random, min_entities: int, validators: int, era_blocks: int) -> _Chain:
    c = _Chain(rng, validators)
    parent, t, height, era = "0" * 64, _GENESIS, 0, 0
    pending: list[dict[str, Any]] = []
    while len(c.events) < min_entities:
        t += timedelta(milliseconds=rng.randint(8_000, 16_000))
        pending += [c.deploy(t - timedelta(seconds=rng.randint(1, 9))) for _ in range(rng.randint(0, 3))]
        if pending and rng.random() < 0.1:  # a deploy never included: it expires
            c.add("DeployExpired", (gone := pending.pop(0))["hash"], {"deploy_hash": gone["hash"]})
        included, pending = pending[:2], pending[2:]
        era_end = height % era_blocks == era_blocks - 1
        block_hash = c.block(height, era, parent, t, [d["hash"] for d in included], era_end)
        for d in included:
            c.processed(d, block_hash)
        for v in c.validators:
            if rng.random() < 0.97:  # now and then a validator's signature never comes
                c.add("FinalitySignature", f"{block_hash} {v}", {"block_hash": block_hash, "era_id": era,
                      "signature": "01" + c.hex(64), "public_key": v})  # fmt: skip
        if rng.random() < 0.02:
            v = rng.choice(c.validators)
            c.add("Fault", f"{era} {v}", {"era_id": era, "public_key": v, "timestamp": _ts(t)})
        if era_end:
            c.add("Step", str(era), {"era_id": era, "execution_effect": {"operations": [], "transforms": [
                {"key": "era-" + str(era), "transform": "Identity"}]}})  # fmt: skip
            era += 1
        parent, height = block_hash, height + 1
    return c


def _node_order(rng: random.Random, events: list[tuple[str, str, bytes]], dup_rate: float) -> list[bytes]:
    """The chain's events as one node sends them: near neighbours swapped, a few sent again later."""
    order = [p for _, _, p in events]
    for i in range(len(order) - 1):
        if rng.random() < 0.3:
            j = min(len(order) - 1, i + rng.randint(1, 6))
            order[i], order[j] = order[j], order[i]
    out: list[bytes] = []
    for p in order:
        out.append(p)
        if rng.random() < dup_rate:
            out.insert(max(0, len(out) - rng.randint(1, 40)), p)  # the same event again, with a new id
    return out


def generate(min_events: int = 10_000, *, nodes: int = 3, seed: int = 0, validators: int = 10, era_blocks: int = 10,
             dup_rate: float = 0.01) -> Synthetic:  # fmt: skip
    """At least ``min_events`` events over ``nodes`` nodes (each sees every entity), with the ground truth."""
    rng = random.Random(seed)
    chain = _chain(rng, -(-min_events // nodes), validators, era_blocks)
    synth = Synthetic(streams=[], first_ids=[], heights=dict(chain.heights))
    for kind, key, _ in chain.events:
        synth.truth.setdefault(kind, set()).add(key)
    for _ in range(nodes):
        stream = _node_order(rng, chain.events, dup_rate)
        first = rng.randrange(0, 2**31)
        stream.append(b'"Shutdown"')
        synth.streams.append(stream)
        synth.first_ids.append(first)
        synth.shutdown_ids.append((first + len(stream) - 1) % 2**32)
    synth.truth["Shutdown"] = {str(i) for i in synth.shutdown_ids}
    return synth
