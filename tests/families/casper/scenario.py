"""A Casper network of three eras seen by two nodes, with every timing known: the ground truth the analytics
tests compute their expected answers from (with plain Python and NumPy, never from the code under test).

Era 0 (heights 100–109) has no known weights (no era-end block of era −1 is stored); its last block is an
era end setting era 1's weights; era 1 (110–139, heights 120–121 never seen) ends setting era 2's weights and
naming an equivocator; era 2 (140–169) has no era end yet. Node ``n2`` lost its main connection for heights
150–152 (it got their signatures, never their blocks). Validator ``D`` signs only half the blocks of era 2.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from bftscope.families.casper.model import CasperEvent
from tests.families.casper.streams import Payloads, StreamBuilder

__all__ = ["NODES", "VALIDATORS", "Truth", "build"]

VALIDATORS = {name: "01" + f"{i + 10:02x}" * 32 for i, name in enumerate("ABCD")}
NODES = ("n1:9999", "n2:9999")
_WEIGHTS = {1: {"A": 1, "B": 2, "C": 3, "D": 4}, 2: {"A": 4, "B": 3, "C": 2, "D": 1}}
_ERAS = {0: range(100, 110), 1: range(110, 140), 2: range(140, 170)}
_NOT_SEEN = {120, 121}
_N2_LOST = {150, 151, 152}
_T0_MS = 1_700_000_000_000
_SIG_MEAN_MS = {"A": 80.0, "B": 200.0, "C": 400.0, "D": 900.0}


@dataclass
class Truth:
    """What happened, as the scenario made it."""

    ts_ms: dict[int, int] = field(default_factory=dict)  # height → block timestamp
    era: dict[int, int] = field(default_factory=dict)  # height → era
    hash: dict[int, str] = field(default_factory=dict)
    proposer: dict[int, str] = field(default_factory=dict)  # height → validator name
    era_end: set[int] = field(default_factory=set)  # heights of era-end blocks
    weights: dict[int, dict[str, int]] = field(default_factory=dict)  # era → name → weight
    equivocators: dict[int, list[str]] = field(default_factory=dict)  # era → names
    faults: dict[int, int] = field(default_factory=dict)  # era → faults
    block_seen: dict[tuple[str, int], int] = field(default_factory=dict)  # (node, height) → received_ns
    sig_seen: dict[tuple[str, int, str], int] = field(default_factory=dict)  # (node, height, name) → received_ns
    # deploy hash → (account, deploy ts, accepted received_ns or None, block height or None, processed received_ns,
    # success)
    deploys: dict[str, tuple[str, int, int | None, int | None, int | None, bool]] = field(default_factory=dict)
    expired: set[str] = field(default_factory=set)
    block_deploys: dict[int, list[str]] = field(default_factory=dict)  # height → deploy hashes it executed


def build(payloads: Payloads, seed: int = 11) -> tuple[list[CasperEvent], Truth]:
    """Every node's events in the order they arrived (by received_ns), and the truth."""
    rng = random.Random(seed)
    sb = StreamBuilder(payloads)
    t = Truth(weights={e: dict(w) for e, w in _WEIGHTS.items()}, equivocators={0: [], 1: ["C"]}, faults={1: 1})
    events: list[CasperEvent] = []
    ts = _T0_MS
    for era, heights in _ERAS.items():
        for h in heights:
            ts += rng.randint(30_000, 40_000) + (rng.choice([0, 0, 0, 25_000]))
            t.ts_ms[h], t.era[h], t.hash[h] = ts, era, f"{h:064x}"
            w = _WEIGHTS.get(era)
            names = sorted(VALIDATORS)
            t.proposer[h] = rng.choices(names, weights=[w[n] for n in names] if w else None)[0]
            if h == heights[-1] and era + 1 in _WEIGHTS:
                t.era_end.add(h)
    for h in sorted(t.ts_ms):
        if h in _NOT_SEEN:
            continue
        era = t.era[h]
        for k, node in enumerate(NODES):
            if node == "n2:9999" and h in _N2_LOST:
                continue
            t.block_seen[(node, h)] = t.ts_ms[h] * 1_000_000 + 150_000_000 + k * 40_000_000 + rng.randint(0, 9_999_999)
        names = [n for n in sorted(VALIDATORS) if era in _WEIGHTS]
        for name in names:
            if era == 2 and name == "D" and rng.random() < 0.5:
                continue  # D misses half of era 2
            delay_ms = rng.expovariate(1 / _SIG_MEAN_MS[name])
            for k, node in enumerate(NODES):
                if node == "n2:9999" and rng.random() < 0.1:
                    continue  # n2 never got this one
                base = t.block_seen.get((node, h), t.ts_ms[h] * 1_000_000 + 150_000_000 + k * 40_000_000)
                early = node == "n1:9999" and rng.random() < 0.05  # relayed ahead of the block
                t.sig_seen[(node, h, name)] = base + int((-30.0 if early else delay_ms) * 1e6) + k * 1_000
    deploy_events = _deploys(sb, rng, t)
    for (node, h), ns in t.block_seen.items():
        extra = {}
        if h in t.era_end:
            extra = {"weights": {VALIDATORS[n]: w for n, w in _WEIGHTS[t.era[h] + 1].items()},
                     "equivocators": [VALIDATORS[n] for n in t.equivocators[t.era[h]]]}  # fmt: skip
        events.append(sb.block(node, ns, block_hash=t.hash[h], height=h, era=t.era[h], ts_ms=t.ts_ms[h],
                               proposer=VALIDATORS[t.proposer[h]], deploys=t.block_deploys.get(h),
                               **extra))  # type: ignore[arg-type]
    for (node, h, name), ns in t.sig_seen.items():
        events.append(sb.signature(node, ns, block_hash=t.hash[h], era=t.era[h], validator=VALIDATORS[name]))
    events.append(sb.fault("n1:9999", t.ts_ms[125] * 1_000_000, era=1, validator=VALIDATORS["C"], ts_ms=t.ts_ms[125]))
    events.extend(deploy_events)
    events.sort(key=lambda e: e.received_ns)
    return events, t


def _deploys(sb: StreamBuilder, rng: random.Random, t: Truth) -> list[CasperEvent]:
    events: list[CasperEvent] = []
    heights = [h for h in sorted(t.ts_ms) if h not in _NOT_SEEN and h > 101]
    for i in range(40):
        dh, account = f"d{i:063x}", "02" + f"{i % 3:02x}" * 33
        h = rng.choice(heights)
        deploy_ts = t.ts_ms[h] - rng.randint(1_000, 90_000)
        accepted_ns: int | None = deploy_ts * 1_000_000 + rng.randint(1, 500) * 1_000_000
        if i == 7:
            accepted_ns = None  # processed, its DeployAccepted never seen
        if accepted_ns is not None:
            for node in NODES:
                events.append(sb.accepted(node, accepted_ns + (node == "n2:9999") * 3_000_000, deploy_hash=dh,
                                          account=account, ts_ms=deploy_ts))  # fmt: skip
        if i in (30, 31):  # accepted, then expired
            events.append(sb.expired("n1:9999", t.ts_ms[h] * 1_000_000 + 1_800_000_000_000, deploy_hash=dh))
            t.expired.add(dh)
            t.deploys[dh] = (account, deploy_ts, accepted_ns, None, None, False)
            continue
        if i in (35,):  # accepted, still pending
            t.deploys[dh] = (account, deploy_ts, accepted_ns, None, None, False)
            continue
        success = i % 9 != 4
        processed_ns = t.block_seen[("n1:9999", h)] + 2_000_000
        events.append(sb.processed("n1:9999", processed_ns, deploy_hash=dh, account=account, block_hash=t.hash[h],
                                   ts_ms=deploy_ts, success=success))  # fmt: skip
        t.deploys[dh] = (account, deploy_ts, accepted_ns, h, processed_ns, success)
        t.block_deploys.setdefault(h, []).append(dh)
    return events
