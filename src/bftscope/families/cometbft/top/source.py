"""Where ``bftscope top`` gets its rows: a :class:`RowSource` is an async iterator of row batches (mappings in
the live shape of docs/live.md) with a :class:`~.state.SourceStatus` the header shows, and a clock.

Implementations: :class:`.recorded.RecordedSource` (a stored run's node, replayed) and
:class:`.rpcsource.RpcSource` (a CometBFT RPC endpoint through the live follower).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, Protocol

from bftscope.families.cometbft.top.view import SourceStatus, ValidatorLike

__all__ = ["RowBatch", "RowSource"]

RowBatch = Sequence[Mapping[str, Any]]


class RowSource(Protocol):
    """A stream of event-row batches for one network, as seen by one observer."""

    def batches(self) -> AsyncIterator[RowBatch]:
        """Row batches in arrival order; ends when the source has nothing more (a recording's end, a stop)."""
        ...

    def status(self) -> SourceStatus:
        """Connection state, network, endpoint and frame count, as of now."""
        ...

    def validators(self) -> Sequence[ValidatorLike]:
        """The latest validator set the source knows (empty when it knows none yet)."""
        ...

    def names(self) -> Mapping[str, str]:
        """Validator address → a readable name (moniker, node label), where the source knows one."""
        ...

    def now_ns(self) -> int:
        """The source's clock (Unix ns): wall time live, the recording's time in a replay."""
        ...

    async def close(self) -> None: ...
