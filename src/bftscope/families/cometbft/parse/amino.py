"""Tendermint ≤ 0.33 consensus WALs: recognised, so that a run of an older network says why its WALs
gave nothing, instead of calling them an unrecognized format.

Before v0.34, Tendermint framed WAL records exactly as later versions do (``crc32c | length |
payload``), but the payload is go-amino (``MarshalBinaryBare`` of ``TimedWALMessage{Time, Msg}``), not
protobuf. Amino writes the interface ``Msg`` as length-prefixed bytes that begin with the concrete
type's 4-byte *prefix*, derived from its registered name (SHA-256 of the name; leading zero bytes
dropped, 3 disambiguation bytes skipped, zero bytes dropped again, next 4 bytes). Protobuf would put a
oneof tag (``0a``/``12``/``1a``/``22``) there, so a frame with a matching CRC whose message starts with
one of the four WAL prefixes is an amino WAL.

Decoding amino records is not supported: the format's parser counts every record as skipped under
:data:`AMINO_WAL` and the ingest marks the file ``unsupported`` (the node's logs are still read).
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterator
from typing import BinaryIO

import pyarrow as pa
from crc32c import crc32c

from bftscope.families.cometbft.parse.identity import Identity
from bftscope.families.cometbft.parse.proto import read_varint
from bftscope.families.cometbft.parse.wal import MAX_RECORD_BYTES, iter_frames
from bftscope.ingest.parsereport import ParseReport

__all__ = ["AMINO_WAL", "WAL_PREFIXES", "AminoWalFormat", "amino_prefix"]

AMINO_WAL = "Tendermint ≤ 0.33 amino WAL: not supported"

_HEADER = struct.Struct(">II")


def amino_prefix(name: str) -> bytes:
    """The 4 prefix bytes go-amino writes before a value of the concrete type registered as ``name``."""
    digest = hashlib.sha256(name.encode()).digest().lstrip(b"\x00")
    return digest[3:].lstrip(b"\x00")[:4]


# The concrete WALMessage types Tendermint ≤ 0.33 registers (consensus/wal.go, RegisterWALMessages).
WAL_PREFIXES = frozenset(
    amino_prefix(f"tendermint/wal/{t}") for t in ("EventDataRoundState", "MsgInfo", "TimeoutInfo", "EndHeightMessage")
)


def _is_amino_record(payload: bytes) -> bool:
    """``0a <time> 12 <len> <WAL prefix> …``, the message exactly filling the payload."""
    try:
        if payload[0] != 0x0A:
            return False
        time_len, pos = read_varint(payload, 1, len(payload))
        pos += time_len
        if payload[pos] != 0x12:
            return False
        msg_len, pos = read_varint(payload, pos + 1, len(payload))
        return pos + msg_len == len(payload) and payload[pos : pos + 4] in WAL_PREFIXES
    except (IndexError, ValueError):
        return False


class AminoWalFormat:
    """:class:`~bftscope.ingest.source.FileFormat` of a Tendermint ≤ 0.33 WAL: recognised, not decoded."""

    name = "tendermint-amino-wal"
    splittable = False
    unsupported = AMINO_WAL  # the ingest marks such files "unsupported" with this reason

    def sniff(self, head: bytes) -> bool:
        """True when ``head`` begins with an intact frame holding an amino TimedWALMessage."""
        if len(head) < 8:
            return False
        crc, length = _HEADER.unpack_from(head, 0)
        if not 0 < length <= MAX_RECORD_BYTES or 8 + length > len(head):
            return False
        payload = head[8 : 8 + length]
        return crc32c(payload) == crc and _is_amino_record(payload)

    def identity(self, stream: BinaryIO, limit_bytes: int) -> Identity:
        return Identity()  # amino records are not decoded; the node is known from its home folder

    def parse(
        self,
        stream: BinaryIO,
        report: ParseReport,
        *,
        start: int = 0,
        end: int | None = None,
        batch_rows: int = 65_536,
        max_line_bytes: int = 8 * 1024 * 1024,
    ) -> Iterator[pa.Table]:
        """Count the file's records as skipped (:data:`AMINO_WAL`); yields nothing. (The ingest gives the
        file its reason, saying whether the node's logs were read.)"""
        for _ in iter_frames(stream, report, start=start, end=end):
            report.skipped[AMINO_WAL] += 1  # one reason for every record: no examples worth keeping
        return
        yield  # a generator that yields nothing
