"""The input of a replay: one node's WAL and/or logs, parsed into event rows, and its ``genesis.json``.

Paths are what ``bftscope ingest`` accepts (files, node homes, a testnet folder); files are found and
recognised by :mod:`bftscope.ingest.discover` and parsed by the family's own formats. A folder holding several
nodes needs ``node`` to say which one is served (a node is named by its home folder, else by its file name).
What could not be read is counted in :attr:`Recording.skipped`, never dropped silently.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from bftscope.errors import InputError
from bftscope.families.cometbft import kinds
from bftscope.families.cometbft.parse.formats import FORMATS
from bftscope.families.cometbft.parse.home import home_identity
from bftscope.families.cometbft.parse.wal import WalFormat, iter_frames
from bftscope.families.cometbft.replay.wirevote import VoteWire, vote_wire
from bftscope.ingest.discover import InputFile, detect_format, discover, open_input
from bftscope.ingest.parsereport import ParseReport

__all__ = ["GenesisValidator", "Recording", "read_recording"]

_MAX_GENESIS_BYTES = 64 * 1024 * 1024
_ADDRESS = re.compile(r"[0-9A-F]{40}")
_USED_KINDS = pa.array([
    kinds.STEP, kinds.MSG_RECEIVED, kinds.MSG_INTERNAL, kinds.VOTE_ADDED, kinds.PROPOSAL_RECEIVED,
    kinds.BLOCK_COMPLETE, kinds.HEIGHT_END, kinds.BLOCK_COMMITTED,
])  # fmt: skip
_MESSAGE_KINDS = pa.array([kinds.MSG_RECEIVED, kinds.MSG_INTERNAL])
_USED_MESSAGES = pa.array(["vote", "proposal"])


@dataclass(frozen=True)
class GenesisValidator:
    address: str  # upper hex
    power: int
    pub_key_type: str
    pub_key_value: str  # base64
    name: str


@dataclass
class Recording:
    node: str
    chain_id: str
    genesis_time: str  # RFC 3339 as written in genesis.json
    initial_height: int
    validators: list[GenesisValidator]
    rows: list[dict[str, Any]]  # event rows (ROW_SCHEMA columns) in file order, "file" = index of the file
    wires: dict[tuple[int, int], VoteWire]  # (file index, record seq) → signature and parts of a WAL vote
    from_wal: bool  # True: consensus events come from the WAL (the node's logs are not used for them)
    p2p_id: str | None = None
    moniker: str | None = None
    files: list[str] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)  # reason → count (files and records not used)


def _label(f: InputFile) -> str:
    return f.home.name if f.home is not None else f.path.name.split(".")[0]


def _is_genesis_name(p: Path) -> bool:
    return p.is_file() and p.name.endswith("genesis.json")


def _genesis_path(paths: list[Path], homes: set[Path]) -> Path | None:
    for p in paths:
        if _is_genesis_name(p):
            return p
    for home in sorted(homes):
        if (home / "config" / "genesis.json").is_file():
            return home / "config" / "genesis.json"
    for p in paths:
        if p.is_dir() and (p / "config" / "genesis.json").is_file():
            return p / "config" / "genesis.json"
    return None


def _read_genesis(path: Path) -> dict[str, Any]:
    if path.stat().st_size > _MAX_GENESIS_BYTES:
        raise InputError(f"{path}: genesis.json larger than {_MAX_GENESIS_BYTES // (1024 * 1024)} MiB")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: not a readable genesis.json ({exc})") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("validators"), list) or not doc["validators"]:
        raise InputError(f"{path}: genesis.json without validators (the replayed validator set comes from it)")
    return doc


def _validators(doc: dict[str, Any], path: Path) -> list[GenesisValidator]:
    out = []
    for v in doc["validators"]:
        try:
            key = v["pub_key"]
            address = v.get("address") or hashlib.sha256(base64.b64decode(key["value"])).digest()[:20].hex()
            address, power, name = str(address).upper(), int(v["power"]), str(v.get("name", ""))
            if not _ADDRESS.fullmatch(address):
                raise ValueError(f"address {address[:50]!r} is not 20 bytes of hex")
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"{path}: a genesis validator without a valid address, power or pub_key ({exc})") from exc
        if power > 0:  # a zero-power entry is no member of the set
            out.append(GenesisValidator(address, power, str(key["type"]), str(key["value"]), name))
    if not out:
        raise InputError(f"{path}: genesis.json has no validator with power")
    return out


def _parse_file(f: InputFile, fmt: Any, index: int, rec: Recording) -> None:
    report = ParseReport()
    with open_input(f) as (stream, _raw):
        for table in fmt.parse(stream, report):
            # Only the rows a timeline reads are kept as Python objects (block parts, p2p traffic … are most rows).
            kind = pc.cast(table.column("kind"), pa.string())
            msg = pc.is_in(pc.cast(table.column("msg_type"), pa.string()), value_set=_USED_MESSAGES)
            wanted = pc.and_(pc.is_in(kind, value_set=_USED_KINDS),
                             pc.or_(pc.invert(pc.is_in(kind, value_set=_MESSAGE_KINDS)), msg))  # fmt: skip
            kept = table.filter(wanted)
            for row in kept.to_pylist():
                row["file"] = index
                rec.rows.append(row)
    if isinstance(fmt, WalFormat):
        with open_input(f) as (stream, _raw):
            for seq, _off, payload in iter_frames(stream, ParseReport()):
                wire = vote_wire(payload)
                if wire is not None:
                    rec.wires[(index, seq)] = wire
    for reason, n in report.skipped.items():
        rec.skipped[f"{f.name}: {reason}"] += n


def read_recording(paths: list[Path], node: str | None = None) -> Recording:
    """Find, pick and parse the files of one node. Raises :class:`InputError` with the reason when the paths
    hold no recording, several nodes and no ``node``, an unknown ``node``, or no ``genesis.json``."""
    for p in paths:
        if not p.exists():
            raise InputError(f"{p}: no such file or folder")
    found = discover(paths)
    by_node: dict[str, list[InputFile]] = {}
    for f in found.files:
        if _is_genesis_name(f.path):
            continue
        by_node.setdefault(_label(f), []).append(f)
    if not by_node:
        raise InputError(f"no WAL or log file found in {', '.join(map(str, paths))}")
    if node is None:
        if len(by_node) > 1:
            raise InputError(f"the paths hold several nodes ({', '.join(sorted(by_node))}): choose one with --node")
        node = next(iter(by_node))
    if node not in by_node:
        raise InputError(f"no node {node!r} in the paths; found: {', '.join(sorted(by_node))}")
    files = by_node[node]
    homes = {f.home for f in files if f.home is not None}
    gpath = _genesis_path(paths, homes)
    if gpath is None:
        raise InputError(f"no config/genesis.json for node {node!r} (give the node home or the genesis.json file)")
    doc = _read_genesis(gpath)
    rec = Recording(
        node=node, chain_id=str(doc.get("chain_id", "")), genesis_time=str(doc.get("genesis_time", "")),
        initial_height=max(1, int(doc.get("initial_height") or 1)), validators=_validators(doc, gpath),
        rows=[], wires={}, from_wal=False,
    )  # fmt: skip
    for s in found.skipped:
        if "node configuration" in s.reason:  # config/ is read for the genesis and identity, on purpose
            continue
        rec.skipped[f"{s.name}: {s.reason}"] += 1
    formats = list(FORMATS)
    parsed: list[tuple[InputFile, Any]] = []
    for f in files:
        fmt, why = detect_format(f, formats)
        if fmt is None:
            rec.skipped[f"{f.name}: {why}"] += 1
            continue
        parsed.append((f, fmt))
    rec.from_wal = any(isinstance(fmt, WalFormat) for _, fmt in parsed)
    for f, fmt in parsed:
        if rec.from_wal and not isinstance(fmt, WalFormat):
            rec.skipped[f"{f.name}: not used (the WAL gives the consensus events)"] += 1
            continue
        _parse_file(f, fmt, len(rec.files), rec)
        rec.files.append(f.name)
    if not rec.files:
        raise InputError(f"node {node!r}: none of its files is a CometBFT WAL or log")
    for home in homes:
        ident = home_identity(home)
        rec.p2p_id = rec.p2p_id or ident.p2p_id
        rec.moniker = rec.moniker or ident.moniker
    return rec
