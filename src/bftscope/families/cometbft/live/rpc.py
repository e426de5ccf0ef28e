"""An async client for a CometBFT node's HTTP JSON-RPC (httpx): ``/status``, ``/validators`` (every page),
``/block?height=`` and ``/commit?height=``, each with a timeout.

Every failure is a typed :class:`RpcError` (``kind`` says which: the node could not be reached, answered an
HTTP error, timed out, sent a JSON-RPC error object, or sent something that is not the expected shape) and is
counted in :attr:`RpcClient.errors` per method and kind. ``/validators`` returns a set only when every page
arrived (``per_page=100``, no cap on the number of pages — ctop stopped at 400 validators); an error on any page
raises, so a caller never stores a partial set. Parameters travel as query parameters built by httpx from
integers only; answers over :data:`MAX_RESPONSE_BYTES` are refused.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import httpx
import msgspec

from bftscope.errors import TransportError
from bftscope.timeutil import parse_rfc3339_ns

__all__ = ["MAX_RESPONSE_BYTES", "PER_PAGE", "NodeStatus", "RpcClient", "RpcError", "RpcValidator", "ValidatorSet"]

PER_PAGE = 100  # CometBFT's maximum
MAX_RESPONSE_BYTES = 64 * 1024 * 1024  # a /block of a full 22 MB block, with room
_PAGE_OUT_OF_RANGE = "page should be within"


class RpcError(TransportError):
    """A failed RPC call. ``kind``: ``unreachable``, ``timeout``, ``http``, ``rpc`` (a JSON-RPC error object;
    ``rpc_code`` set), ``malformed`` (not the shape the method returns), ``incomplete`` (pages of a set missing)."""

    def __init__(self, method: str, kind: str, message: str, code: int | None = None) -> None:
        super().__init__(f"{method}: {message}", method=method, kind=kind)
        self.method, self.kind, self.rpc_code = method, kind, code


class _EndOfPages(Exception):
    pass


@dataclass(frozen=True)
class NodeStatus:
    height: int  # latest committed block
    block_time_ns: int | None
    chain_id: str
    node_id: str
    moniker: str
    catching_up: bool
    earliest_height: int | None  # a pruned node cannot give blocks below it


@dataclass(frozen=True)
class RpcValidator:
    address: str
    power: int
    proposer_priority: int | None
    index: int  # position in the set (the order of commit signatures)


@dataclass(frozen=True)
class ValidatorSet:
    height: int
    validators: list[RpcValidator]


def _int(value: Any, what: str, method: str) -> int:
    try:
        if isinstance(value, bool):
            raise ValueError
        return int(value)
    except (TypeError, ValueError) as exc:
        raise RpcError(method, "malformed", f"{what} is not an integer: {str(value)[:40]!r}") from exc


class RpcClient:
    """One node's RPC at ``base_url`` (``http(s)://host:port[/prefix]``). ``transport`` is for tests."""

    def __init__(
        self, base_url: str, *, timeout: float = 10.0, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.errors: Counter[str] = Counter()  # "validators rpc" → n
        self.calls: Counter[str] = Counter()
        self._client = httpx.AsyncClient(timeout=timeout, transport=transport, follow_redirects=False)
        self._decode = msgspec.json.Decoder()

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _call(self, method: str, params: dict[str, int] | None = None, *, paged: bool = False) -> Any:
        self.calls[method] += 1
        try:
            return await self._result(method, params)
        except RpcError as exc:
            if paged and exc.kind == "rpc" and _PAGE_OUT_OF_RANGE in str(exc):
                raise _EndOfPages from exc  # the documented end of the pages, not a failure
            self.errors[f"{method} {exc.kind}"] += 1
            raise

    async def _result(self, method: str, params: dict[str, int] | None) -> Any:
        url = f"{self.base_url}/{method}"
        try:
            async with self._client.stream("GET", url, params=params) as response:
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > MAX_RESPONSE_BYTES:
                        raise RpcError(method, "malformed", f"answer over {MAX_RESPONSE_BYTES} bytes")
        except httpx.TimeoutException as exc:
            raise RpcError(method, "timeout", f"no answer from {url} in time") from exc
        except httpx.HTTPError as exc:
            raise RpcError(method, "unreachable", f"{url}: {type(exc).__name__}: {exc}") from exc
        try:
            doc = self._decode.decode(bytes(body))
        except msgspec.DecodeError:
            if response.status_code >= 400:
                raise RpcError(method, "http", f"{url} answered {response.status_code}") from None
            raise RpcError(method, "malformed", "the answer is not JSON") from None
        if isinstance(doc, dict) and isinstance(doc.get("error"), dict):
            err = doc["error"]
            code = err.get("code") if isinstance(err.get("code"), int) else None
            raise RpcError(method, "rpc", f"{err.get('message', '')}: {str(err.get('data', ''))[:200]}", code)
        if response.status_code >= 400:
            raise RpcError(method, "http", f"{url} answered {response.status_code}")
        result = doc.get("result") if isinstance(doc, dict) else None
        if not isinstance(result, dict):
            raise RpcError(method, "malformed", "no result object")
        return result

    async def status(self) -> NodeStatus:
        r = await self._call("status")
        sync, info = r.get("sync_info"), r.get("node_info")
        if not isinstance(sync, dict) or not isinstance(info, dict):
            self.errors["status malformed"] += 1
            raise RpcError("status", "malformed", "no sync_info/node_info")
        try:
            block_time = parse_rfc3339_ns(str(sync.get("latest_block_time", "")))
        except ValueError:
            block_time = None
        earliest = sync.get("earliest_block_height")
        return NodeStatus(
            height=_int(sync.get("latest_block_height"), "latest_block_height", "status"),
            block_time_ns=block_time, chain_id=str(info.get("network", "")), node_id=str(info.get("id", "")),
            moniker=str(info.get("moniker", "")), catching_up=bool(sync.get("catching_up", False)),
            earliest_height=_int(earliest, "earliest_block_height", "status") if earliest else None,
        )  # fmt: skip

    async def block(self, height: int) -> dict[str, Any]:
        """The ``/block`` result: ``{block_id, block}`` (the shape of a NewBlock event's value)."""
        r: dict[str, Any] = await self._call("block", {"height": height})
        return r

    async def commit(self, height: int) -> dict[str, Any]:
        """The commit of ``height``: ``signed_header.commit`` of the ``/commit`` result."""
        r = await self._call("commit", {"height": height})
        commit = (r.get("signed_header") or {}).get("commit") if isinstance(r.get("signed_header"), dict) else None
        if not isinstance(commit, dict):
            self.errors["commit malformed"] += 1
            raise RpcError("commit", "malformed", "no signed_header.commit")
        return commit

    async def validators(self, height: int | None = None) -> ValidatorSet:
        """The whole set at ``height`` (the latest when ``None``), every page of ``PER_PAGE``.

        Pages after the first ask for the height the first one answered, so a set never mixes two heights.
        """
        got: list[RpcValidator] = []
        total: int | None = None
        page = 1
        while True:
            params = {"page": page, "per_page": PER_PAGE} | ({} if height is None else {"height": height})
            try:
                r = await self._call("validators", params, paged=page > 1)
            except _EndOfPages:
                break
            at = _int(r.get("block_height"), "block_height", "validators")
            height = at if height is None else height
            total = _int(r.get("total", 0), "total", "validators")
            vals = r.get("validators")
            if not isinstance(vals, list):
                raise self._bad("validators is not a list")
            for v in vals:
                if not isinstance(v, dict) or not isinstance(v.get("address"), str) or not v["address"]:
                    raise self._bad("a validator without an address")
                priority = v.get("proposer_priority")
                got.append(RpcValidator(
                    address=v["address"].upper(), power=_int(v.get("voting_power"), "voting_power", "validators"),
                    proposer_priority=None if priority is None else _int(priority, "proposer_priority", "validators"),
                    index=len(got),
                ))  # fmt: skip
            if not vals or len(got) >= total:
                break
            page += 1
        if total is None or len(got) != total:
            self.errors["validators incomplete"] += 1
            raise RpcError("validators", "incomplete", f"{len(got)} of {total} validators arrived")
        assert height is not None
        return ValidatorSet(height, got)

    def _bad(self, message: str) -> RpcError:
        self.errors["validators malformed"] += 1
        return RpcError("validators", "malformed", message)
