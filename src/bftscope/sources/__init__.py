"""Transports (how frames arrive) and the decoder protocol (what they mean); see :mod:`bftscope.sources.base`."""

from bftscope.sources.base import (
    Decoder,
    DecoderFactory,
    Frame,
    LiveSourceSpec,
    MockTransport,
    Transport,
    TransportClosed,
    TransportError,
    TransportFactory,
)

__all__ = [
    "Decoder",
    "DecoderFactory",
    "Frame",
    "LiveSourceSpec",
    "MockTransport",
    "Transport",
    "TransportClosed",
    "TransportError",
    "TransportFactory",
]
