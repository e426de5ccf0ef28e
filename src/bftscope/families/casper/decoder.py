"""Casper SSE frames → :class:`~bftscope.families.casper.model.CasperEvent` s.

Each SSE event's ``data`` is one externally tagged JSON object (``{"BlockAdded": {…}}``) or the JSON string
``"Shutdown"``; its ``id:`` is the node's u32 event id. The payload is decoded into typed msgspec structs that
name only the fields bftscope keeps (the rest — Step's execution effects, deploy bodies — stays in ``raw``),
so a large event costs one pass. Bad input never raises: a frame that is not JSON, an unknown event type, a
type with a missing or ill-typed field, an id that is not a u32 — each is counted in :attr:`CasperDecoder.report`
under its reason and the stream goes on. Numbers bftscope stores as 64-bit integers (heights, eras) must fit.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import msgspec

from bftscope.families.casper.model import CasperEvent
from bftscope.ingest.parsereport import ParseReport
from bftscope.sources.base import Frame

__all__ = ["CasperDecoder", "event_type", "parse_timestamp_ms", "parse_ttl_ms"]

_I64 = 2**63 - 1
_U32 = 2**32 - 1
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class _Header(msgspec.Struct):
    parent_hash: str
    timestamp: str
    era_id: int
    height: int
    state_root_hash: str | None = None
    era_end: Any = None
    protocol_version: str | None = None


class _Body(msgspec.Struct):
    proposer: str
    deploy_hashes: list[str] = []
    transfer_hashes: list[str] = []


class _Block(msgspec.Struct):
    header: _Header
    body: _Body


class _BlockAdded(msgspec.Struct):
    block_hash: str
    block: _Block


class _DeployHeader(msgspec.Struct):
    account: str
    timestamp: str
    ttl: str
    chain_name: str | None = None
    gas_price: int | None = None


class _DeployAccepted(msgspec.Struct):
    hash: str
    header: _DeployHeader


class _Outcome(msgspec.Struct):
    """A Success or Failure: only what is kept (its effects — often most of the payload — are skipped unread)."""

    cost: Any = ""
    error_message: Any = None


class _DeployProcessed(msgspec.Struct):
    deploy_hash: str
    account: str
    block_hash: str
    execution_result: dict[str, _Outcome]
    timestamp: str | None = None
    ttl: str | None = None


class _DeployExpired(msgspec.Struct):
    deploy_hash: str


class _Fault(msgspec.Struct):
    era_id: int
    public_key: str
    timestamp: str


class _FinalitySignature(msgspec.Struct):
    block_hash: str
    era_id: int
    public_key: str
    signature: str


class _Step(msgspec.Struct):
    era_id: int


_BODY: dict[str, type[msgspec.Struct]] = {
    "BlockAdded": _BlockAdded,
    "DeployAccepted": _DeployAccepted,
    "DeployProcessed": _DeployProcessed,
    "DeployExpired": _DeployExpired,
    "Fault": _Fault,
    "FinalitySignature": _FinalitySignature,
    "Step": _Step,
}
_DECODERS = {name: msgspec.json.Decoder(dict[str, typ]) for name, typ in _BODY.items()}  # type: ignore[valid-type]
_ANY = msgspec.json.Decoder()
_TTL_UNITS = {"ms": 1, "msec": 1, "s": 1000, "sec": 1000, "m": 60_000, "min": 60_000, "h": 3_600_000,
              "hr": 3_600_000, "d": 86_400_000, "day": 86_400_000, "w": 604_800_000}  # fmt: skip


_MS_STAMP = re.compile(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{3}))?Z", re.ASCII)
_EPOCH_DAY = date(1970, 1, 1).toordinal()


def parse_timestamp_ms(text: str) -> int:
    """RFC 3339 (``2023-01-01T09:55:25.312Z``) → epoch milliseconds, exactly (integer arithmetic: a float
    product truncated made one timestamp in ~200 a millisecond early); no offset means UTC. A node's own form
    (UTC, milliseconds or none) is read directly; any other goes through :meth:`datetime.fromisoformat`."""
    m = _MS_STAMP.fullmatch(text)
    if m is not None:
        y, mo, d, h, mi, sec, ms = m.groups()
        if int(h) < 24 and int(mi) < 60 and int(sec) < 60:
            days = date(int(y), int(mo), int(d)).toordinal() - _EPOCH_DAY  # ValueError for a day that is not
            return ((days * 24 + int(h)) * 60 + int(mi)) * 60_000 + int(sec) * 1000 + (int(ms) if ms else 0)
    t = datetime.fromisoformat(text)
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return (t - _EPOCH) // timedelta(milliseconds=1)


def parse_ttl_ms(text: str) -> int:
    """A humantime duration (``30m``, ``1h``, ``4h 11m 524ms``, ``1day``) → milliseconds."""
    total = 0
    for part in text.split():
        i = 0
        while i < len(part) and part[i].isdigit():
            i += 1
        if i == 0 or part[i:] not in _TTL_UNITS:
            raise ValueError(f"not a duration: {text!r}")
        total += int(part[:i]) * _TTL_UNITS[part[i:]]
    if not text.split():
        raise ValueError("empty duration")
    return total


def _weights(era_end: Any) -> list[tuple[str, str]] | None:
    """``next_era_validator_weights`` of an era end, as a map or as ``[{validator, weight}]`` → pairs."""
    if not isinstance(era_end, dict):
        return None
    raw = era_end.get("next_era_validator_weights")
    if isinstance(raw, dict):
        return [(str(k), str(v)) for k, v in raw.items()]
    if isinstance(raw, list):
        return [(str(w["validator"]), str(w["weight"])) for w in raw if isinstance(w, dict) and "validator" in w]
    return []


def _fields(kind: str, body: Any) -> tuple[str, dict[str, Any]]:
    """(entity key, parsed columns) of a decoded body; raises ValueError/KeyError/TypeError on bad values."""
    if kind == "BlockAdded":
        h, b = body.block.header, body.block.body
        if not (0 <= h.height <= _I64 and 0 <= h.era_id <= _I64):
            raise ValueError("height or era out of range")
        return body.block_hash, {
            "block_hash": body.block_hash, "height": h.height, "era_id": h.era_id,
            "timestamp_ms": parse_timestamp_ms(h.timestamp), "proposer": b.proposer, "parent_hash": h.parent_hash,
            "state_root_hash": h.state_root_hash, "deploy_hashes": b.deploy_hashes,
            "transfer_hashes": b.transfer_hashes, "era_end": h.era_end is not None,
            "next_era_weights": _weights(h.era_end), "protocol_version": h.protocol_version,
        }  # fmt: skip
    if kind == "DeployAccepted":
        hd = body.header
        return body.hash, {"deploy_hash": body.hash, "account": hd.account,
                           "timestamp_ms": parse_timestamp_ms(hd.timestamp), "ttl_ms": parse_ttl_ms(hd.ttl),
                           "chain_name": hd.chain_name}  # fmt: skip
    if kind == "DeployProcessed":
        if len(body.execution_result) != 1:
            raise ValueError("execution_result must be Success or Failure")
        outcome, result = next(iter(body.execution_result.items()))
        if outcome not in ("Success", "Failure"):
            raise ValueError(f"execution_result {outcome!r}")
        return body.deploy_hash, {
            "deploy_hash": body.deploy_hash, "account": body.account, "block_hash": body.block_hash,
            "timestamp_ms": parse_timestamp_ms(body.timestamp) if body.timestamp else None,
            "success": outcome == "Success", "cost": str(result.cost) or None,
            "error_message": result.error_message,
        }  # fmt: skip
    if kind == "DeployExpired":
        return body.deploy_hash, {"deploy_hash": body.deploy_hash}
    if kind == "Fault":
        if not 0 <= body.era_id <= _I64:
            raise ValueError("era out of range")
        return f"{body.era_id} {body.public_key}", {"era_id": body.era_id, "public_key": body.public_key,
                                                    "timestamp_ms": parse_timestamp_ms(body.timestamp)}  # fmt: skip
    if kind == "FinalitySignature":
        if not 0 <= body.era_id <= _I64:
            raise ValueError("era out of range")
        sig = {"block_hash": body.block_hash, "era_id": body.era_id, "public_key": body.public_key,
               "signature": body.signature}  # fmt: skip
        return f"{body.block_hash} {body.public_key}", sig
    if kind == "Step":
        if not 0 <= body.era_id <= _I64:
            raise ValueError("era out of range")
        return str(body.era_id), {"era_id": body.era_id}
    raise KeyError(kind)


class CasperDecoder:
    """Frames of one node's channel → events. ``source`` labels the node, ``channel`` the SSE path."""

    def __init__(self, source: str, channel: str, *, clock: Callable[[], int] = time.time_ns) -> None:
        self.source = source
        self.channel = channel
        self.report = ParseReport()
        self._clock = clock

    def feed(self, frame: Frame) -> Sequence[CasperEvent]:
        self.report.lines += 1
        self.report.bytes_read += len(frame.data)
        ev = self._decode(frame)
        if ev is None:
            return ()
        self.report.events += 1
        return (ev,)

    def finish(self) -> Sequence[CasperEvent]:
        return ()

    def _where(self, frame: Frame) -> str:
        return f"{self.source}/{self.channel} id {frame.id}"

    def _decode(self, frame: Frame) -> CasperEvent | None:
        raw = frame.data
        event_id: int | None = None
        if frame.id:
            if not (frame.id.isascii() and frame.id.isdigit()) or int(frame.id) > _U32:
                self.report.skip("bad id", self._where(frame), frame.id)
                return None
            event_id = int(frame.id)
        head = raw[:1]
        if head != b"{":
            head = raw.lstrip()[:1]
        if head == b'"':
            try:
                text = _ANY.decode(raw)
            except msgspec.DecodeError:
                self.report.skip("not JSON", self._where(frame), raw)
                return None
            if text != "Shutdown":
                self.report.skip("unknown event type", self._where(frame), raw)
                return None
            return CasperEvent(self.source, self.channel, event_id, "Shutdown", str(event_id), self._clock(), raw, {})
        if head != b"{":
            self.report.skip("not JSON", self._where(frame), raw)
            return None
        kind = _type_of(raw)
        if kind == "ApiVersion":
            try:
                version = _ANY.decode(raw)["ApiVersion"]
            except (msgspec.DecodeError, KeyError, TypeError):
                self.report.skip("bad ApiVersion", self._where(frame), raw)
                return None
            if not isinstance(version, str):
                self.report.skip("bad ApiVersion", self._where(frame), raw)
                return None
            # never an id (a node sends none; a parser's sticky last id after a resume is not this event's)
            return CasperEvent(self.source, self.channel, None, "ApiVersion", version, self._clock(), raw,
                               {"version": version})  # fmt: skip
        decoder = _DECODERS.get(kind or "")
        if decoder is None:
            try:
                _ANY.decode(raw)
            except msgspec.DecodeError:
                self.report.skip("not JSON", self._where(frame), raw)
                return None
            # the name is in the example, not the reason
            self.report.skip("unknown event type", self._where(frame), raw)
            return None
        assert kind is not None
        try:
            body = decoder.decode(raw)[kind]
            key, fields = _fields(kind, body)
        except msgspec.ValidationError as exc:
            self.report.skip(f"bad {kind}", self._where(frame), str(exc))
            return None
        except msgspec.DecodeError:
            self.report.skip("not JSON", self._where(frame), raw)
            return None
        except (ValueError, KeyError, TypeError) as exc:
            self.report.skip(f"bad {kind}", self._where(frame), str(exc))
            return None
        return CasperEvent(self.source, self.channel, event_id, kind, key, self._clock(), raw, fields)


def _type_of(raw: bytes) -> str | None:
    """The tag of ``{"Tag": …}`` read from the first bytes (without decoding the payload)."""
    start = raw.find(b'"')
    end = raw.find(b'"', start + 1) if start >= 0 else -1
    if start < 0 or end < 0 or raw[:start].strip() != b"{":
        return None
    return raw[start + 1 : end].decode("utf-8", errors="replace")


def event_type(raw: bytes) -> str | None:
    """The event type a payload claims (its tag, or ``Shutdown``), without decoding it: what a server filters
    channels by. None when it names none."""
    if raw.strip() == b'"Shutdown"':
        return "Shutdown"
    return _type_of(raw.lstrip())
