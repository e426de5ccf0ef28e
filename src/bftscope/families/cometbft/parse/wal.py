"""The CometBFT consensus write-ahead log (``data/cs.wal/wal``) as a source of events.

Owns the WAL's framing and its mapping to event rows. The WAL is the most precise record of what
a node's consensus state machine saw: every proposal, block part and vote it took from a peer
(with the peer id and the local time it was dequeued), its own votes and proposals, each
round-step change, each timeout and each end of height. Since Tendermint v0.34 a WAL file is a
sequence of frames ``crc32c (4 bytes, big-endian) | length (4 bytes, big-endian) | payload``,
where the payload is a ``TimedWALMessage`` protobuf (decoded by :mod:`bftscope.families.cometbft.parse.proto`)
and CometBFT rejects a length above 1 MiB as corruption.

WALs get cut by crashes and disks corrupt them, so framing errors are expected input: a bad
frame is counted in the :class:`~bftscope.ingest.parsereport.ParseReport` with its byte offset, and
the reader resynchronises on the next offset where a frame with a sane length and a matching CRC
starts. Memory stays bounded (one read buffer of at most ``1 MiB + chunk``) whatever the input.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterator
from typing import BinaryIO

import pyarrow as pa
from crc32c import crc32c

from bftscope.families.cometbft import kinds
from bftscope.families.cometbft.parse.identity import Identity
from bftscope.families.cometbft.parse.partsets import PartSets
from bftscope.families.cometbft.parse.proto import decode_wal_message
from bftscope.ingest.parsereport import ParseReport
from bftscope.model import ROW_COLUMNS, EventBatch

__all__ = ["CHUNK_BYTES", "FROM_FIRE_TIME", "FROM_PARTS", "MAX_RECORD_BYTES", "WalFormat", "iter_frames"]

MAX_RECORD_BYTES = 1024 * 1024  # CometBFT's maxMsgSizeBytes: a longer frame is corruption
CHUNK_BYTES = 1024 * 1024  # bytes asked of the stream per read
_HEADER = struct.Struct(">II")  # crc32c, payload length
_LENGTH = struct.Struct(">I")
# Where a frame's big-endian length field could be 1..0x10FFFF (checked exactly afterwards): a
# zero byte, then three bytes that are not all zero and begin with at most 0x10. A lookahead, so
# that overlapping candidates are all seen.
_SANE_LENGTH = re.compile(rb"(?=\x00(?:[\x01-\x10][\x00-\xff]{2}|\x00[\x01-\xff][\x00-\xff]|\x00\x00[\x01-\xff]))")

# Skip reasons (ParseReport.skipped keys).
BAD_CRC = "bad CRC"
BAD_LENGTH = "bad length"
TRUNCATED = "truncated record"
UNDECODABLE = "undecodable record"
OUT_OF_RANGE = "value out of range"

_SEQ = ROW_COLUMNS.index("seq")

# extra.derived_from of the events a WAL implies but has no record of (docs/event-model.md).
FROM_PARTS = "wal block parts"
FROM_FIRE_TIME = "wal timeout fire time \u2212 duration"
_FROM_PARTS = f'{{"derived_from":"{FROM_PARTS}"}}'
_PART_SET_TYPES = frozenset(("block_part", "proposal"))
OVERDUE_WARNING = (
    "{n} overdue timeout(s) (negative duration: fired at once, e.g. after a restart): kept as timeout_fired,"
    " no timeout_scheduled derived (the time they were scheduled is unknown)"
)


def _scheduled_extra(duration_ns: int) -> str:
    return f'{{"duration_ns":{duration_ns},"derived_from":"{FROM_FIRE_TIME}"}}'


class _FrameReader:
    """Cuts a stream into WAL frames, reporting and skipping corrupt regions.

    Reads ``chunk_bytes`` at a time into ``buf``, whose first byte is at stream offset ``base``.
    Only bytes that may still begin a frame are kept across reads, so ``buf`` never exceeds
    ``8 + MAX_RECORD_BYTES + chunk_bytes``.
    """

    def __init__(
        self, stream: BinaryIO, report: ParseReport, *, start: int, limit: int | None, chunk_bytes: int
    ) -> None:
        self.stream = stream
        self.report = report
        self.chunk_bytes = max(1, chunk_bytes)
        self.left = limit  # bytes we may still read (None: to the end of the stream)
        self.buf = b""
        self.base = start
        self.eof = False

    def refill(self, keep: int) -> None:
        """Drop ``buf[:keep]`` and append the next chunk (sets ``eof`` when there is none)."""
        want = self.chunk_bytes if self.left is None else min(self.chunk_bytes, self.left)
        tail = self.buf[keep:]
        self.buf = b""  # let the old buffer go before the read: peak memory is tail + chunk, twice
        self.base += keep
        data = self.stream.read(want) if want > 0 else b""
        if not data:
            self.eof = True
            self.buf = tail
            return
        if self.left is not None:
            self.left -= len(data)
        self.report.bytes_read += len(data)
        self.buf = tail + data

    def frames(self, end: int | None) -> Iterator[tuple[int, int, bytes]]:
        """``(seq, offset, payload)`` of every intact frame that begins before ``end``.

        ``payload`` has a matching CRC but is not decoded. ``report.lines`` counts every frame,
        intact or not (updated per buffer, so a progress display sees it move).
        """
        report = self.report
        self.refill(0)
        if self.eof and not self.buf:
            report.warn("empty file")
            return
        unpack = _HEADER.unpack_from
        seq = counted = 0  # ordinal of the next frame; frames already added to report.lines
        pos = 0
        try:
            while True:
                buf = self.buf
                n = len(buf)
                base = self.base
                stop_at = n if end is None else min(n, end - base)
                # Hot loop: consecutive intact frames inside the buffer.
                while pos + 8 <= n and pos < stop_at:
                    crc, length = unpack(buf, pos)
                    stop = pos + 8 + length
                    if stop > n or length == 0 or length > MAX_RECORD_BYTES:
                        break
                    payload = buf[pos + 8 : stop]
                    if crc32c(payload) != crc:
                        break
                    yield seq, base + pos, payload
                    seq += 1
                    pos = stop
                report.lines += seq - counted
                counted = seq
                if end is not None and base + pos >= end:
                    return
                # Why did the hot loop stop? (Drop our reference to the buffer first: the reader
                # may replace it below, and the old one must not stay alive next to the new.)
                length = unpack(buf, pos)[1] if pos + 8 <= n else -1
                buf = b""
                if length < 0:  # fewer than 8 bytes left in the buffer
                    if not self.eof:
                        self.refill(pos)
                        pos = 0
                        continue
                    if pos == n:
                        return
                    pos, lost = self.corrupt(pos, TRUNCATED)
                elif not 0 < length <= MAX_RECORD_BYTES:
                    pos, lost = self.corrupt(pos, BAD_LENGTH)
                elif pos + 8 + length <= n:
                    pos, lost = self.corrupt(pos, BAD_CRC)
                elif not self.eof:  # the frame continues in the next chunk
                    self.refill(pos)
                    pos = 0
                    continue
                else:  # the frame runs past the end of the stream
                    pos, lost = self.corrupt(pos, TRUNCATED)
                seq += lost  # the records of the corrupt region, now reported
                if pos < 0:
                    return
        finally:
            report.lines += seq - counted

    def corrupt(self, pos: int, reason: str) -> tuple[int, int]:
        """Report the corrupt region starting at ``buf[pos]`` and resync after it.

        Returns the buffer index of the next intact frame (-1 when the stream ends first) and
        the number of records the region counts for. When the length fields still chain from
        frame to frame up to that next intact frame, the region is that many records with bad
        CRCs (rotten payloads): each is reported, so ordinals of later records stay those of an
        undamaged file. Any other region (garbage, a broken length field) counts as one record.
        A region that looked like a truncated frame but is followed by an intact one was not a
        truncated last record: its length ran past the data, so it counts as bad length.
        """
        ends = self.chain(pos)
        sample = self.buf[pos : pos + 32]
        start = self.base + pos
        found = self.resync(pos + 1)
        stop = self.base + (found if found >= 0 else len(self.buf))
        if reason == TRUNCATED and found >= 0:
            reason = BAD_LENGTH
        if stop in ends:
            starts = [start, *ends[: ends.index(stop)]]
            self.report.skip(reason, f"offset {start}", sample)
            for off in starts[1:]:
                self.report.skip(BAD_CRC, f"offset {off}")
            return found, len(starts)
        self.report.skip(reason, f"offset {start}", sample)
        return found, 1

    def chain(self, pos: int) -> list[int]:
        """Stream offsets where frames would end, following sane length fields from ``buf[pos]``
        as far as the buffer goes."""
        buf = self.buf
        n = len(buf)
        ends = []
        while pos + 8 <= n:
            length = _LENGTH.unpack_from(buf, pos + 4)[0]
            if not 0 < length <= MAX_RECORD_BYTES:
                break
            pos += 8 + length
            if pos > n:
                break
            ends.append(self.base + pos)
        return ends

    def resync(self, q: int) -> int:
        """Buffer index of the first intact frame at or after ``buf[q]``, or -1 at end of stream.

        :data:`_SANE_LENGTH` finds, in C, the next place whose length field is in 1..~1 MiB (so
        runs of zeros, as in a preallocated or crash-extended file, are skipped fast); only there
        is the CRC computed.
        """
        search = _SANE_LENGTH.search
        while True:
            n = len(self.buf)
            m = search(self.buf, q + 4)
            if m is None:
                # No candidate with a whole length field here: keep the last 7 bytes (a header
                # may straddle the chunk boundary) and read on.
                if self.eof:
                    return -1
                self.refill(max(q, n - 7))
                q = 0
                continue
            z = m.start()
            del m  # a match keeps its buffer alive; refill below must be able to free it
            p = z - 4
            length = _LENGTH.unpack_from(self.buf, z)[0]
            if length <= MAX_RECORD_BYTES:
                stop = z + 4 + length
                if stop > n and not self.eof:
                    self.refill(p)  # the whole candidate frame fits after a refill
                    q = 0
                    continue
                if stop <= n and crc32c(self.buf[z + 4 : stop]) == _LENGTH.unpack_from(self.buf, p)[0]:
                    return p
            q = p + 1


def iter_frames(
    stream: BinaryIO,
    report: ParseReport,
    *,
    start: int = 0,
    end: int | None = None,
    limit: int | None = None,
    chunk_bytes: int = CHUNK_BYTES,
) -> Iterator[tuple[int, int, bytes]]:
    """``(seq, offset, payload)`` for every intact WAL frame of ``stream`` (read from its position).

    ``start`` is the stream offset of that position (offsets are reported from it), frames that
    begin at or after ``end`` are not returned, and at most ``limit`` bytes are read. Corrupt
    regions are counted in ``report`` and skipped.
    """
    return _FrameReader(stream, report, start=start, limit=limit, chunk_bytes=chunk_bytes).frames(end)


def _seek(stream: BinaryIO, offset: int) -> None:
    if stream.seekable():
        stream.seek(offset)
    elif offset:
        raise ValueError("cannot seek a non-seekable stream; WAL parsing starts at offset 0")


def _plausible_record_start(payload: bytes, length: int) -> bool:
    """Does ``payload`` (a prefix of a ``length``-byte frame payload) begin like a TimedWALMessage?

    Checks the canonical layout ``0a <L> 08 ... | 12 <M> <WALMessage member tag>`` with
    ``M`` exactly filling the rest of the frame: random bytes and text fail this.
    """
    if len(payload) < 32 or payload[0] != 0x0A or payload[2] != 0x08:
        return False
    ts_len = payload[1]
    if not 2 <= ts_len <= 22:
        return False
    pos = 2 + ts_len
    if payload[pos] != 0x12:
        return False
    pos += 1
    msg_len = 0
    for shift in (0, 7, 14):  # the WALMessage length: a 1-3 byte varint (≤ 1 MiB)
        b = payload[pos]
        pos += 1
        msg_len |= (b & 0x7F) << shift
        if b < 0x80:
            break
    else:
        return False
    return pos + msg_len == length and payload[pos] in (0x0A, 0x12, 0x1A, 0x22)


class WalFormat:
    """:class:`~bftscope.ingest.source.FileFormat` of a CometBFT (Tendermint ≥ v0.34) WAL file."""

    name = "cometbft-wal"
    splittable = False  # frames can only be found from the start (resync is for damage, not seeking)

    def sniff(self, head: bytes) -> bool:
        """True when ``head`` begins with an intact WAL frame.

        The first frame must have a sane length and, when it lies wholly in ``head``, a matching
        CRC and a decodable payload. A first frame longer than ``head`` (a record with a 64 KiB
        block part can be) is accepted when ``head`` is cut by the sniff window rather than the
        end of the file and its visible start has the canonical TimedWALMessage layout.
        """
        if len(head) < 8:
            return False
        crc, length = _HEADER.unpack_from(head, 0)
        if not 0 < length <= MAX_RECORD_BYTES:
            return False
        if 8 + length <= len(head):
            payload = head[8 : 8 + length]
            if crc32c(payload) != crc:
                return False
            try:
                decode_wal_message(payload)
            except (ValueError, IndexError):
                return False
            return True
        return len(head) >= 4096 and _plausible_record_start(head[8:], length)

    def identity(self, stream: BinaryIO, limit_bytes: int) -> Identity:
        """The validator address, from the node's first own vote within ``limit_bytes``.

        Messages without a peer id are the node's own; a vote among them carries its validator
        address. The WAL holds no p2p id, moniker or chain id.
        """
        ident = Identity()
        _seek(stream, 0)
        scratch = ParseReport()  # damage is reported by parse, not here
        for _seq, _off, payload in iter_frames(stream, scratch, limit=limit_bytes):
            try:
                rec = decode_wal_message(payload)
            except (ValueError, IndexError):
                continue
            msg = rec.msg
            if msg is not None and rec.peer == "" and msg.msg_type == "vote" and msg.validator:
                ident.validator = msg.validator
                ident.evidence.append("WAL own vote")
                break
        return ident

    def parse(
        self,
        stream: BinaryIO,
        report: ParseReport,
        *,
        start: int = 0,
        end: int | None = None,
        batch_rows: int = 65_536,
        max_line_bytes: int = 8 * 1024 * 1024,  # unused: the WAL's own 1 MiB frame limit applies
    ) -> Iterator[pa.Table]:
        """Yield Arrow batches of rows for the WAL records beginning in ``[start, end)``.

        Row mapping: round-state → ``step``; MsgInfo → ``msg_received`` (with a peer id) or
        ``msg_internal`` (the node's own); TimeoutInfo → ``timeout_fired``; EndHeight →
        ``height_end``. Two kinds the WAL has no record of are derived from the records, with
        ``extra.derived_from`` saying how: ``block_complete`` at the record that completes a
        round's proposal block (:mod:`bftscope.families.cometbft.parse.partsets`), and ``timeout_scheduled`` at a
        fired timeout's time minus its duration (none for an overdue timeout: those are counted
        in a warning). ``seq`` is the record's ordinal in the file, counting skipped records (a
        region of unframeable garbage counts as one; a derived event has the seq of the record it
        comes from); ``ts`` is the record's local time, ``size`` the payload length of a message.
        """
        _seek(stream, start)
        batch = EventBatch()
        append = batch.rows.append
        decode = decode_wal_message
        received, internal = kinds.MSG_RECEIVED, kinds.MSG_INTERNAL
        blocks = PartSets()
        on_part, on_proposal, part_set_types = blocks.part, blocks.proposal, _PART_SET_TYPES  # locals: hot loop
        overdue = 0  # fired timeouts whose schedule time is unknown (see below)
        for seq, off, payload in iter_frames(stream, report, start=start, end=end):
            try:
                ts, kind, height, rnd, step, msg, peer, duration = decode(payload)
            except (ValueError, IndexError):  # ProtoError; IndexError would be a decoder bug, still not fatal
                report.skip(UNDECODABLE, f"offset {off}", payload)
                continue
            if msg is not None:
                mtype, _h, _r, vote_type, validator, vindex, part, block_hash, signer_ts, _step, extra = msg
                append(
                    (ts, received if peer else internal, height, rnd, None, vote_type, mtype, validator, vindex,
                     part, peer or None, block_hash, signer_ts, None, len(payload), seq, extra)
                )  # fmt: skip
                # The record at which the node first holds every part of the round's proposal block
                # (one set lookup for the votes that make up most of a WAL).
                if mtype in part_set_types:
                    if part is not None:
                        done = on_part(height, rnd, part)
                    else:
                        done = on_proposal(height, rnd, extra, block_hash)
                    if done is not None:
                        append(
                            (ts, kinds.BLOCK_COMPLETE, height, rnd, None, None, None, None, None,
                             None, None, done or None, None, None, None, seq, _FROM_PARTS)
                        )  # fmt: skip
            elif kind == "round_state":
                append(
                    (ts, kinds.STEP, height, rnd, step, None, None, None, None,
                     None, None, None, None, None, None, seq, None)
                )  # fmt: skip
            elif kind == "timeout":
                # Recorded when the timeout fired; it was scheduled ``duration`` earlier. An overdue one
                # (negative duration) was scheduled at a moment the record does not give, perhaps before a
                # restart: no schedule event for it, only a count.
                if duration is not None:
                    if duration >= 0:
                        append(
                            (ts - duration, kinds.TIMEOUT_SCHEDULED, height, rnd, step, None, None, None, None,
                             None, None, None, None, None, None, seq, _scheduled_extra(duration))
                        )  # fmt: skip
                    else:
                        overdue += 1
                append(
                    (ts, kinds.TIMEOUT_FIRED, height, rnd, step, None, None, None, None,
                     None, None, None, None, None, None, seq,
                     None if duration is None else kinds.timeout_extra(duration))
                )  # fmt: skip
            else:  # end_height
                append(
                    (ts, kinds.HEIGHT_END, height, None, None, None, None, None, None,
                     None, None, None, None, None, None, seq, None)
                )  # fmt: skip
                blocks.end_height(height)
            if len(batch.rows) >= batch_rows:
                yield _take(batch, report)
                append = batch.rows.append
        if overdue:
            report.warn(OVERDUE_WARNING.format(n=overdue))
        if batch.rows:
            yield _take(batch, report)


def _take(batch: EventBatch, report: ParseReport) -> pa.Table:
    """Convert the batch to Arrow, reporting the rows it had to drop.

    :class:`EventBatch` drops rows whose values do not fit their columns (say a round beyond
    int32). That only happens for a frame whose CRC matches but whose fields are nonsense, and
    checking here, once per batch, keeps range checks off the per-record path.
    """
    rows = batch.rows
    table = batch.take()
    if table.num_rows != len(rows):
        kept = set(table.column("seq").to_pylist())
        for row in rows:
            if row[_SEQ] not in kept:
                report.skip(OUT_OF_RANGE, f"record {row[_SEQ]}")
    report.events += table.num_rows
    return table
