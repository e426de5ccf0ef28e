"""Transports (how frames arrive: ``file``, ``sse``, ``websocket``, ``replay``) and the decoder protocol
(what they mean); the shared vocabulary is in :mod:`bftscope.sources.base`."""
