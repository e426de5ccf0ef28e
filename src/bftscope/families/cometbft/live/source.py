"""The CometBFT family's live source as the chain-neutral seam sees it (:class:`LiveSourceSpec` "cometbft-rpc"):
a websocket to an RPC endpoint subscribed to the consensus events, decoded by :class:`RpcDecoder`. The
:class:`~bftscope.families.cometbft.live.follower.NetworkFollower` adds what one connection cannot do
(failover, heights, backfill); this spec lets the generic live runner and tools drive one endpoint as well."""

from __future__ import annotations

from bftscope.families.cometbft.live.decoder import RpcDecoder
from bftscope.families.cometbft.live.endpoint import parse_endpoint, subscribe_messages
from bftscope.sources.base import LiveSourceSpec, Transport
from bftscope.sources.websocket import WebSocketTransport

__all__ = ["RPC_SOURCE"]


def _transport(endpoint: str) -> Transport:
    return WebSocketTransport(parse_endpoint(endpoint).ws, subscribe=subscribe_messages(), name="cometbft-rpc")


RPC_SOURCE = LiveSourceSpec(
    "cometbft-rpc", transport=_transport, decoder=RpcDecoder,
    description="CometBFT RPC websocket: NewRound, NewRoundStep, Vote, CompleteProposal, NewBlock, ValidatorSetUpdates",
)  # fmt: skip
