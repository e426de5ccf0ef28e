"""Tendermint ≤ 0.33 WALs (amino payloads in the same crc32c | length framing) are recognised and said to be
unsupported, instead of "unrecognized format"; the node's logs are still read.

The amino WAL here is built from the documented encoding (go-amino ``MarshalBinaryBare`` of
``TimedWALMessage{Time, Msg}``, ``Msg`` an interface registered as ``tendermint/wal/...``): field 1 the time
(seconds, nanos), field 2 the message as length-prefixed bytes starting with the concrete type's 4-byte
prefix (SHA-256 of the name, leading zero bytes dropped, 3 disambiguation bytes skipped, zero bytes
dropped again).
"""

from __future__ import annotations

import hashlib
import struct
from pathlib import Path

import pytest
from crc32c import crc32c
from rich.console import Console

from bftscope.config import Settings
from bftscope.errors import NothingIngestedError
from bftscope.families.cometbft.analytics.report import build_report, render_report
from bftscope.families.cometbft.parse.amino import AminoWalFormat
from bftscope.families.cometbft.parse.wal import WalFormat
from bftscope.ingest.pipeline import ingest
from bftscope.store import DuckDBStore
from tests.conftest import require_data


def _prefix(name: str) -> bytes:
    h = hashlib.sha256(name.encode()).digest().lstrip(b"\x00")[3:]
    return h.lstrip(b"\x00")[:4]


def _uvarint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(num: int, body: bytes) -> bytes:
    return bytes([num << 3 | 2]) + _uvarint(len(body)) + body


def _amino_record(seconds: int, nanos: int, concrete: str, fields: bytes) -> bytes:
    time = b"\x08" + _uvarint(seconds) + b"\x10" + _uvarint(nanos)
    payload = _field(1, time) + _field(2, _prefix(concrete) + fields)
    return struct.pack(">II", crc32c(payload), len(payload)) + payload


def amino_wal() -> bytes:
    t = 1_600_000_000
    return b"".join([
        _amino_record(t, 5, "tendermint/wal/EndHeightMessage", b""),  # height 0: a new WAL
        _amino_record(t + 1, 7, "tendermint/wal/EventDataRoundState", b"\x08\x01" + _field(3, b"RoundStepNewHeight")),
        _amino_record(t + 2, 9, "tendermint/wal/TimeoutInfo", b"\x08\x80\xca\xb5\xee\x01\x10\x01\x20\x01"),
        _amino_record(t + 3, 11, "tendermint/wal/EndHeightMessage", b"\x08\x01"),
    ])  # fmt: skip


def test_amino_framing_is_recognised_and_protobuf_is_not() -> None:
    data = amino_wal()
    assert not WalFormat().sniff(data)  # the payload is not a protobuf TimedWALMessage
    assert AminoWalFormat().sniff(data)
    real = require_data("cometbft/tendermint-v0.34-4node-wal") / "node0" / "data" / "cs.wal" / "wal"
    assert not AminoWalFormat().sniff(real.read_bytes()[:65536])
    assert not AminoWalFormat().sniff(b"I[2023-04-13|10:10:58.529] Version info" * 10)


def _home(root: Path, with_log: bool) -> Path:
    home = root / "node0"
    (home / "data" / "cs.wal").mkdir(parents=True)
    (home / "data" / "cs.wal" / "wal").write_bytes(amino_wal())
    (home / "config").mkdir()
    if with_log:
        (home / "tendermint.log").write_text(
            "I[2020-09-13|12:26:41.000] Executed block                               module=state height=1"
            " validTxs=0 invalidTxs=0\n", encoding="utf-8")  # fmt: skip
    return home


def test_an_amino_wal_is_named_and_the_logs_are_read(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "store")
    store = DuckDBStore.open(settings.store_path, settings)
    result = ingest(store, "old", [_home(tmp_path, with_log=True)], settings)
    wal = next(f for f in result.files if f.name.endswith("wal"))
    assert wal.status == "unsupported"
    assert wal.reason == "Tendermint ≤ 0.33 amino WAL: not supported (logs of this node were read)"
    assert result.events == 1
    # The report says why its tables are empty, and which input would fill them.
    rep = build_report(store, store.get_run("old").id)
    console = Console(record=True, width=200)
    render_report(console, rep)
    text = console.export_text()
    assert "Tendermint ≤ 0.33 amino WAL: not supported (logs of this node were read)" in text
    assert "no data" in text and "WAL" in text
    store.close()


def test_an_amino_wal_alone_fails_with_the_reason(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "store")
    store = DuckDBStore.open(settings.store_path, settings)
    with pytest.raises(NothingIngestedError, match=r"Tendermint ≤ 0\.33 amino WAL: not supported"):
        ingest(store, "old", [_home(tmp_path, with_log=False)], settings)
    store.close()
