"""``bftscope top --rpc URL``: rows from a CometBFT RPC endpoint, through the live follower
(``families/cometbft/live/``: its decoder turns JSON-RPC frames into the rows the view reads)."""

from __future__ import annotations

from bftscope.errors import InputError
from bftscope.families.cometbft.top.source import RowSource

__all__ = ["rpc_source"]


def rpc_source(urls: list[str]) -> RowSource:
    """A row source following ``urls`` (one network's endpoints)."""
    raise InputError(
        "following an RPC endpoint needs the live decoder (families/cometbft/live/decoder.py), which this build "
        f"does not have yet; `bftscope top NAME` replays a stored run meanwhile (asked for: {', '.join(urls)})"
    )
