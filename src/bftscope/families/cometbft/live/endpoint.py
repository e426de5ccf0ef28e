"""An RPC endpoint as the user names it (``--rpc URL``) → the websocket URL to subscribe on, the HTTP base for
``/status`` & co, and the label of the node its events are stored under; and the subscribe messages.

Accepted: ``http(s)://host:port[/prefix]``, ``tcp://host:port`` (CometBFT's own notation, read as http),
``ws(s)://host:port[/prefix]/websocket`` and a bare ``host:port``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import urlsplit

from bftscope.errors import InputError
from bftscope.families.cometbft.live.decoder import EVENT_KINDS

__all__ = ["Endpoint", "parse_endpoint", "subscribe_messages"]

_HTTP = {"http": "http", "https": "https", "tcp": "http", "ws": "http", "wss": "https"}


@dataclass(frozen=True)
class Endpoint:
    url: str  # as given
    http: str  # http(s)://host:port[/prefix]
    ws: str  # ws(s)://host:port[/prefix]/websocket
    label: str  # host:port[/prefix]: the node of the run its events land on


def parse_endpoint(url: str) -> Endpoint:
    text = url.strip()
    if "://" not in text:
        text = "http://" + text
    parts = urlsplit(text)
    scheme = _HTTP.get(parts.scheme.lower())
    if scheme is None or not parts.hostname:
        raise InputError(f"not an RPC endpoint: {url!r} (expected http(s)://host:port, tcp://… or ws(s)://…)")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise InputError(f"an RPC endpoint takes no query, fragment or credentials: {url!r}")
    try:
        port = parts.port
    except ValueError as exc:
        raise InputError(f"bad port in {url!r}") from exc
    path = parts.path.rstrip("/")
    if path.endswith("/websocket"):
        path = path[: -len("/websocket")]
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    netloc = host + (f":{port}" if port else "")
    http = f"{scheme}://{netloc}{path}"
    ws = f"{'wss' if scheme == 'https' else 'ws'}://{netloc}{path}/websocket"
    return Endpoint(url, http, ws, netloc + path)


def subscribe_messages() -> list[str]:
    """One ``subscribe`` per event kind, ids 1…6 in :data:`EVENT_KINDS` order. CometBFT allows 5 subscriptions
    per client by default (``max_subscriptions_per_client``): the sixth, ``ValidatorSetUpdates``, is the one a
    default node refuses, and the follower learns of set changes from NewBlock's validator updates as well."""
    return [
        json.dumps({"jsonrpc": "2.0", "method": "subscribe", "id": i, "params": {"query": f"tm.event = '{kind}'"}})
        for i, kind in enumerate(EVENT_KINDS, 1)
    ]
