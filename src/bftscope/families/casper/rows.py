"""What each Casper table's rows are (docs/casper.md "Store"): how an event type's entity is keyed and stored
(:data:`ENTITY_TABLES`), the typed Arrow schema of every table's rows, the rows a decided batch inserts
(:func:`tables_of`, a block's children included), and a journal record's encoding of a decided batch
(docs/casper.md "Journal")."""

from __future__ import annotations

import operator
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import msgspec
import pyarrow as pa

from bftscope.families.casper.model import CasperEvent, channel_of

__all__ = ["DEPLOYS_SCHEMA", "ENTITY_TABLES", "LOG_SCHEMA", "PAYLOAD_SCHEMA", "SCHEMAS", "WEIGHTS_SCHEMA", "Decided",
           "EntitySpec", "block_children", "decode_tables", "encode_record", "encode_tables", "record_tables",
           "tables_of", "utf8"]  # fmt: skip


@dataclass(frozen=True)
class EntitySpec:
    """How one event type's entity is stored: its table, its key columns (and the key's values from an event),
    its columns besides ``run_id``, ``received_ns`` and ``out_id`` (and their values from an event, in that
    order), and the column growing with time that narrows a check (its value from an event; None where the
    type has none)."""

    table: str
    key_cols: tuple[str, ...]
    key: Callable[[CasperEvent], tuple[Any, ...]]
    cols: tuple[str, ...]
    values: Callable[[CasperEvent], tuple[Any, ...]]
    range_col: str | None = None

    def range_of(self, e: CasperEvent) -> int | None:
        if self.range_col is None:
            return None
        v = e.fields.get(self.range_col)
        return None if v is None else int(v)


_BLOCK_COLS: Final = ("block_hash", "height", "era_id", "timestamp_ms", "proposer", "parent_hash",
                      "state_root_hash", "deploy_count", "transfer_count", "era_end", "protocol_version")  # fmt: skip


def _block(e: CasperEvent) -> tuple[Any, ...]:
    f = e.fields
    return (e.key, f["height"], f["era_id"], f["timestamp_ms"], f["proposer"], f["parent_hash"],
            f["state_root_hash"], len(f["deploy_hashes"]), len(f["transfer_hashes"]), f["era_end"],
            f["protocol_version"])  # fmt: skip


def _pick(*names: str) -> Callable[[CasperEvent], tuple[Any, ...]]:
    get = operator.itemgetter(*names)
    if len(names) == 1:
        return lambda e: (get(e.fields),)
    return lambda e: get(e.fields)


def _event_id(e: CasperEvent) -> int:
    return -1 if e.event_id is None else e.event_id


def _spec(table: str, key_cols: tuple[str, ...], cols: tuple[str, ...], range_col: str | None = None) -> EntitySpec:
    """An entity whose key and columns are fields of its events."""
    return EntitySpec(table, key_cols, _pick(*key_cols), cols, _pick(*cols), range_col)


ENTITY_TABLES: Final[dict[str, EntitySpec]] = {
    "BlockAdded": EntitySpec("casper_blocks", ("block_hash",), lambda e: (e.key,), _BLOCK_COLS, _block, "height"),
    "DeployAccepted": _spec("casper_deploys_accepted", ("deploy_hash",),
                            ("deploy_hash", "account", "timestamp_ms", "ttl_ms", "chain_name"), "timestamp_ms"),
    "DeployProcessed": _spec("casper_deploys_processed", ("deploy_hash",),
                             ("deploy_hash", "account", "block_hash", "timestamp_ms", "success", "cost",
                              "error_message"), "timestamp_ms"),
    "DeployExpired": _spec("casper_deploys_expired", ("deploy_hash",), ("deploy_hash",)),
    "Fault": _spec("casper_faults", ("era_id", "public_key"), ("era_id", "public_key", "timestamp_ms"), "era_id"),
    "FinalitySignature": _spec("casper_signatures", ("block_hash", "public_key"),
                               ("block_hash", "public_key", "era_id", "signature"), "era_id"),
    "Step": _spec("casper_steps", ("era_id",), ("era_id",), "era_id"),
    # a node's shutdown is its own: keyed by the node and its event id
    "Shutdown": EntitySpec("casper_shutdowns", ("source", "event_id"), lambda e: (e.source, _event_id(e)),
                        ("source", "event_id"), lambda e: (e.source, _event_id(e))),
}  # fmt: skip

_S, _I64, _I32, _BOOL = pa.string(), pa.int64(), pa.int32(), pa.bool_()
_COLUMN_TYPES: Final[dict[str, pa.DataType]] = {
    "block_hash": _S, "height": _I64, "era_id": _I64, "timestamp_ms": _I64, "proposer": _S, "parent_hash": _S,
    "state_root_hash": _S, "deploy_count": _I32, "transfer_count": _I32, "era_end": _BOOL, "protocol_version": _S,
    "deploy_hash": _S, "account": _S, "ttl_ms": _I64, "chain_name": _S, "success": _BOOL, "cost": _S,
    "error_message": _S, "public_key": _S, "signature": _S, "source": _S, "event_id": _I64,
}  # fmt: skip
SCHEMAS: Final[dict[str, pa.Schema]] = {
    kind: pa.schema([(c, _COLUMN_TYPES[c]) for c in spec.cols] + [("received_ns", _I64), ("out_id", _I64)])
    for kind, spec in ENTITY_TABLES.items()
}
LOG_SCHEMA: Final = pa.schema([("source", _S), ("channel", _S), ("event_id", _I64), ("type", _S), ("key", _S),
                               ("received_ns", _I64), ("out_id", _I64)])  # fmt: skip
PAYLOAD_SCHEMA: Final = pa.schema([("out_id", _I64), ("type", _S), ("key", _S), ("channel", _S), ("source", _S),
                                   ("received_ns", _I64), ("bytes", _I32), ("raw", _S)])  # fmt: skip
DEPLOYS_SCHEMA: Final = pa.schema([("block_hash", _S), ("deploy_hash", _S), ("kind", _S), ("ordinal", _I32)])
WEIGHTS_SCHEMA: Final = pa.schema([("era_id", _I64), ("validator", _S), ("weight", _S), ("block_hash", _S)])
_TABLE_NAMES: Final = frozenset([spec.table for spec in ENTITY_TABLES.values()] + [
    "casper_event_log", "casper_payloads", "casper_block_deploys", "casper_era_weights"])  # fmt: skip


def utf8(raws: list[bytes]) -> pa.Array:
    """The payloads as text: checked as UTF-8 by Arrow at once; a payload that is not (a node's bug) has its
    bad bytes replaced, as it would be anywhere else."""
    try:
        return pa.array(raws, pa.binary()).cast(pa.string())
    except pa.ArrowInvalid:
        return pa.array([r.decode("utf-8", errors="replace") for r in raws], pa.string())


def block_children(blocks: list[CasperEvent]) -> dict[str, pa.Table]:
    """A block's deploy and transfer hashes, and the next era's weights an era end sets."""
    deploys: list[list[Any]] = [[], [], [], []]  # block_hash, deploy_hash, kind, ordinal
    weights: list[list[Any]] = [[], [], [], []]  # era_id, validator, weight, block_hash
    for e in blocks:
        for kind, hashes in (("deploy", e.fields["deploy_hashes"]), ("transfer", e.fields["transfer_hashes"])):
            n = len(hashes)
            deploys[0] += [e.key] * n
            deploys[1] += hashes
            deploys[2] += [kind] * n
            deploys[3] += range(n)
        for validator, weight in e.fields.get("next_era_weights") or ():
            weights[0].append(int(e.fields["era_id"]) + 1)
            weights[1].append(validator)
            weights[2].append(weight)
            weights[3].append(e.key)
    out: dict[str, pa.Table] = {}
    if deploys[0]:
        out["casper_block_deploys"] = pa.table(deploys, schema=DEPLOYS_SCHEMA)
    if weights[0]:
        out["casper_era_weights"] = pa.table(weights, schema=WEIGHTS_SCHEMA)
    return out


class Decided(msgspec.Struct, array_like=True, gc=False):
    """A decided batch (:meth:`~bftscope.families.casper.store.CasperStore.plan`): its events new to their node's
    channel (``fresh``, in arrival order: one event-log row each), which of them are new entities (``new``:
    indices into ``fresh``, ascending — the ``out_id`` order) and the ``out_id`` of the first. Everything its
    rows are made of (:func:`tables_of`), so a journal record holds this rather than the rows: encoding it costs
    the writer ~1.5 us an event, the rows ~8 (they are built by the thread that inserts them)."""

    first: int
    fresh: list[CasperEvent]
    new: list[int]


def tables_of(d: Decided) -> dict[str, pa.Table]:
    """The rows a decided batch inserts, by table (``run_id`` is added on insert)."""
    fresh, first = d.fresh, d.first
    new = [fresh[i] for i in d.new]
    out_ids: list[int | None] = [None] * len(fresh)
    for n, i in enumerate(d.new):
        out_ids[i] = first + n
    tables = {"casper_event_log": pa.table([
        [e.source for e in fresh], [e.channel for e in fresh],
        list(map(_event_id, fresh)), [e.type for e in fresh],
        [e.key for e in fresh], [e.received_ns for e in fresh], out_ids,
    ], schema=LOG_SCHEMA)}  # fmt: skip
    if not new:
        return tables
    raws = [e.raw for e in new]
    tables["casper_payloads"] = pa.table([
        range(first, first + len(new)), [e.type for e in new], [e.key for e in new],
        [channel_of(e.type) for e in new], [e.source for e in new], [e.received_ns for e in new],
        list(map(len, raws)), utf8(raws),
    ], schema=PAYLOAD_SCHEMA)  # fmt: skip
    by_type: dict[str, tuple[list[CasperEvent], list[int]]] = {}
    for n, e in enumerate(new):
        evs, ids = by_type.setdefault(e.type, ([], []))
        evs.append(e)
        ids.append(first + n)
    for kind, (evs, ids) in by_type.items():
        spec = ENTITY_TABLES[kind]
        columns: list[Any] = list(zip(*map(spec.values, evs), strict=True))
        columns += [[e.received_ns for e in evs], ids]
        tables[spec.table] = pa.table(columns, schema=SCHEMAS[kind])
        if kind == "BlockAdded":
            tables |= block_children(evs)
    return tables


_RECORD: Final = b"\xffD1"  # a record of a decided batch; earlier records held Arrow rows (decode_tables)
_record_encoder = msgspec.msgpack.Encoder()
_record_decoder = msgspec.msgpack.Decoder(Decided)


def encode_record(d: Decided) -> bytes:
    """A decided batch as one journal record's payload."""
    return _RECORD + _record_encoder.encode(d)


def record_tables(data: bytes) -> dict[str, pa.Table]:
    """The rows of a journal record's payload: a decided batch (:func:`encode_record`), or the Arrow rows the
    journal held before (:func:`encode_tables`: a record left by an earlier version is applied alike);
    ValueError when it is neither."""
    if not data.startswith(_RECORD):
        return decode_tables(data)
    try:
        return tables_of(_record_decoder.decode(memoryview(data)[len(_RECORD) :]))
    except (msgspec.DecodeError, KeyError, TypeError, pa.ArrowInvalid) as exc:
        raise ValueError(f"not a journal record: {exc}") from exc


def encode_tables(tables: dict[str, pa.Table]) -> bytes:
    """Rows as a journal record held them before decided batches (per table its name and an Arrow IPC stream);
    kept to read such records (:func:`decode_tables`)."""
    out = bytearray()
    for name, table in tables.items():
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, table.schema) as w:
            w.write_table(table)
        data = sink.getvalue()
        out += struct.pack("<H", len(name)) + name.encode() + struct.pack("<Q", data.size) + data.to_pybytes()
    return bytes(out)


def decode_tables(data: bytes) -> dict[str, pa.Table]:
    """The rows of a journal record of Arrow rows (:func:`encode_tables`); ValueError when it is not one."""
    tables: dict[str, pa.Table] = {}
    view, i = memoryview(data), 0
    try:
        while i < len(data):
            (n,) = struct.unpack_from("<H", data, i)
            name = bytes(view[i + 2 : i + 2 + n]).decode()
            (size,) = struct.unpack_from("<Q", data, i + 2 + n)
            start = i + 2 + n + 8
            if name not in _TABLE_NAMES or start + size > len(data):
                raise ValueError(f"not a journal record (table {name!r})")
            tables[name] = pa.ipc.open_stream(pa.py_buffer(view[start : start + size])).read_all()
            i = start + size
    except (struct.error, UnicodeDecodeError, pa.ArrowInvalid) as exc:
        raise ValueError(f"not a journal record: {exc}") from exc
    return tables
