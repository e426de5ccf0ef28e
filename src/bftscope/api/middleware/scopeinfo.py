"""Facts the middlewares read from an ASGI scope, and the one way they edit response headers.

Owns :func:`matched_route`: which route of the app will serve the request, found the way the router finds
it, so limits and authentication follow the route that really matches rather than a guess from the path
(``PUT /v1/projects/upload`` is a project update, whatever its last segment says).

Owns the trust decision about proxies: who the client is (``X-Forwarded-For``) and whether the request
arrived over TLS (``X-Forwarded-Proto``). Both headers are set by whoever sends them, so they are only
believed when the socket peer is a configured trusted proxy; the rate limiter, the access log and HSTS
all go through :class:`TrustedProxies` so they can never disagree about it.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from fastapi.routing import iter_route_contexts
from starlette.datastructures import Headers
from starlette.routing import compile_path
from starlette.types import Message, Scope

__all__ = ["MatchedRoute", "TrustedProxies", "matched_route", "path_has_route", "request_headers", "route_path",
           "set_response_headers"]  # fmt: skip

_ROUTE_KEY = "bftscope.matched_route"

_IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def route_path(scope: Scope) -> str:
    """The request path relative to the app's mount point (``root_path``), as the router sees it."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root):
        return path[len(root) :] or "/"
    return path


@dataclass(frozen=True)
class MatchedRoute:
    """The route that will serve a request: its template as declared (``/v1/projects/{projectId}``) and the
    route object itself (a FastAPI ``APIRoute`` carries its ``dependant``)."""

    template: str
    route: Any


@dataclass(frozen=True)
class _Entry:
    matched: MatchedRoute
    methods: frozenset[str]
    regex: re.Pattern[str]


def _route_table(app: Any) -> tuple[_Entry, ...]:
    """Every HTTP route of the app, flattened through included routers, in the router's order."""
    table: tuple[_Entry, ...] | None = getattr(app.state, "bftscope_route_table", None)
    if table is None:
        entries = []
        for context in iter_route_contexts(app.routes):
            template = context.path_format or context.path
            methods = getattr(context.original_route, "methods", None)
            if template is None or not methods:  # mounts and websockets: no body limit or token decision here
                continue
            regex, _, _ = compile_path(template)
            entries.append(_Entry(MatchedRoute(template, context.original_route), frozenset(methods), regex))
        table = tuple(entries)
        app.state.bftscope_route_table = table  # built on the first request, when every route is included
    return table


def matched_route(scope: Scope) -> MatchedRoute | None:
    """The route that fully matches this request (path and method), found as the router finds it: the
    first route whose path matches and that takes the method. None for a 404 or 405, or an app without
    routes. Looked up once per request and remembered in the scope."""
    if _ROUTE_KEY in scope:
        found: MatchedRoute | None = scope[_ROUTE_KEY]
        return found
    found = None
    app = scope.get("app")
    if app is not None and hasattr(app, "routes") and hasattr(app, "state"):
        path, method = route_path(scope), scope.get("method", "")
        for entry in _route_table(app):
            if method in entry.methods and entry.regex.match(path):
                found = entry.matched
                break
    scope[_ROUTE_KEY] = found
    return found


def path_has_route(app: Any, path: str) -> bool:
    """Whether any route of the app serves ``path`` (relative to the mount point), whatever the method."""
    return any(entry.regex.match(path) for entry in _route_table(app))


def request_headers(scope: Scope) -> Headers:
    return Headers(scope=scope)


def set_response_headers(message: Message, pairs: Sequence[tuple[bytes, bytes]], drop: Iterable[bytes] = ()) -> None:
    """Replace (not append) ``pairs`` in an ``http.response.start`` message and remove ``drop``."""
    names = {name for name, _ in pairs}
    names.update(drop)
    kept = [(name, value) for name, value in message.get("headers", ()) if name.lower() not in names]
    kept.extend(pairs)
    message["headers"] = kept


def _parse_ip(text: str) -> _IPAddress | None:
    text = text.strip()
    # Some proxies append a port: "203.0.113.7:5123" or "[2001:db8::1]:5123".
    if text.startswith("[") and "]" in text:
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class TrustedProxies:
    """A set of proxy networks, and what a request from one of them may tell us about the real client."""

    def __init__(self, entries: Iterable[str]) -> None:
        self._networks = tuple(ipaddress.ip_network(entry, strict=False) for entry in entries)

    def _contains(self, address: _IPAddress | None) -> bool:
        return address is not None and any(address in network for network in self._networks)

    def _peer(self, scope: Scope) -> str | None:
        client = scope.get("client")
        return str(client[0]) if client else None

    def peer_is_trusted(self, scope: Scope) -> bool:
        if not self._networks:
            return False
        peer = self._peer(scope)
        return peer is not None and self._contains(_parse_ip(peer))

    def client_ip(self, scope: Scope) -> str:
        """The address to attribute the request to (rate limiting, logs).

        From a trusted peer, walk ``X-Forwarded-For`` from the right: each trusted proxy appended the
        address it received from, so the right-most entry that is not a trusted proxy is the first hop
        we did not control. Everything left of it is client-supplied and ignored.
        """
        peer = self._peer(scope) or "unknown"
        if not self.peer_is_trusted(scope):
            return peer
        chain = ",".join(request_headers(scope).getlist("x-forwarded-for")).split(",")
        leftmost: _IPAddress | None = None
        for entry in reversed(chain):
            if not entry.strip():
                continue
            address = _parse_ip(entry)
            if address is None:
                return peer  # a malformed hop: nothing further left can be attributed
            if not self._contains(address):
                return str(address)
            leftmost = address
        # Every hop is one of our proxies: the request started inside the trusted network.
        return str(leftmost) if leftmost is not None else peer

    def is_https(self, scope: Scope) -> bool:
        """Whether the client connection used TLS: our own socket, or a trusted proxy's word for it.

        With several values (``https, http``), the first one is the scheme the outermost proxy saw.
        """
        if scope.get("scheme") == "https":
            return True
        if not self.peer_is_trusted(scope):
            return False
        proto = request_headers(scope).get("x-forwarded-proto", "")
        return proto.split(",", 1)[0].strip().lower() == "https"
