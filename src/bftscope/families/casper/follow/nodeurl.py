"""A followed node's URL → its label and the SSE channels to open.

``http://host:9999`` (any path but ``/events…``) is a 1.x node: ``/events/main``, ``/events/deploys`` and
``/events/sigs``. A URL ending in ``/events`` is the legacy root alone; one ending in ``/events/<channel>`` is
that channel alone. The label — how the node is named in the store and the status — is ``host:port``, never
the credentials or query a URL may carry.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from bftscope.errors import InputError
from bftscope.live.endpoints import check_endpoint, redact_url

__all__ = ["NodeUrl", "parse_node_url"]

_CHANNELS_1X = ("main", "deploys", "sigs")
_DEFAULT_PORT = {"http": 80, "https": 443}


@dataclass(frozen=True)
class NodeUrl:
    url: str  # as given (it may carry credentials: shown only through redact_url)
    label: str  # host:port
    channels: dict[str, str]  # channel → its SSE URL

    @property
    def shown(self) -> str:
        return redact_url(self.url)


def parse_node_url(url: str) -> NodeUrl:
    """:class:`NodeUrl` of an http(s) URL; :class:`InputError` for anything else."""
    check_endpoint(url)
    parts = urlsplit(url)
    if parts.scheme.lower() not in _DEFAULT_PORT:
        raise InputError(f"Casper node {redact_url(url)!r}: an http:// or https:// URL of the node's SSE server")
    host = parts.hostname or ""
    label = f"[{host}]" if ":" in host else host
    label += f":{parts.port or _DEFAULT_PORT[parts.scheme.lower()]}"
    path = parts.path.rstrip("/")
    head, _, last = path.rpartition("/")
    if path.endswith("/events"):
        channels = {"events": url}
    elif head.endswith("/events") and last in _CHANNELS_1X:
        channels = {last: url}
    elif "/events" in path:
        raise InputError(f"Casper node {redact_url(url)!r}: unknown SSE path (expected /events/main, "
                         "/events/deploys, /events/sigs or the legacy /events)")  # fmt: skip
    else:
        channels = {ch: urlunsplit(parts._replace(path=f"{path}/events/{ch}")) for ch in _CHANNELS_1X}
    return NodeUrl(url, label, channels)
