"""Timelines of the real v0.34 4-node WAL testnet, built once per test session and node."""

from __future__ import annotations

from functools import cache

from bftscope.families.cometbft.replay.recording import read_recording
from bftscope.families.cometbft.replay.timeline import Timeline, build_timeline
from tests.conftest import require_data

TESTNET = "cometbft/tendermint-v0.34-4node-wal"
NODES = ("node0", "node1", "node2", "node3")


@cache
def _timeline(node: str, drop: str | None) -> Timeline:
    return build_timeline(read_recording([require_data(TESTNET)], node), drop_validator=drop)


def timeline(node: str, drop: str | None = None) -> Timeline:
    """The node's timeline (``drop``: a validator's votes left out). Shared: do not modify it."""
    require_data(TESTNET)
    return _timeline(node, drop)
