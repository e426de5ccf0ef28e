"""CometBFT JSON logs (``log_format = "json"``): one JSON object per line.

Lines are decoded in blocks with one msgspec call per block (a JSON array made of the block's
lines); a block containing a bad line is re-decoded line by line so only the bad line is lost
and counted. Each decoded line goes through :class:`.logmsgs.MessageMapper`.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator
from typing import Any, BinaryIO, cast

import msgspec
import numpy as np
import pyarrow as pa

from bftscope.families.cometbft import kinds as K
from bftscope.families.cometbft.parse.identity import Identity, scan_identity
from bftscope.families.cometbft.parse.logmsgs import HotLine, LogLine, MessageMapper, Skip
from bftscope.ingest.lines import CHUNK_BYTES, read_line_blocks, read_lines
from bftscope.ingest.parsereport import ParseReport, flush_batch
from bftscope.model import SharedRowBatch

__all__ = ["JsonLogFormat"]

_BLOCK = 512
_NEWLINE = ord("\n")
_list_decoder = msgspec.json.Decoder(list[LogLine])
_hot_decoder = msgspec.json.Decoder(list[HotLine])
_one_decoder = msgspec.json.Decoder(LogLine)


def _decode_one(raw: bytes) -> LogLine | None:
    try:
        return _one_decoder.decode(raw)
    except (msgspec.DecodeError, ValueError):
        return None


def _decoded_blocks(
    text: bytes, pos: int, report: ParseReport
) -> Iterator[tuple[list[LogLine | HotLine | None], list[int]]]:
    """The lines of ``text`` (found at stream offset ``pos``) decoded, with their stream offsets.

    Lines go to msgspec in blocks of ``_BLOCK``, each block as one JSON array: the block's lines
    joined by commas, cut from a copy of ``text`` whose newlines are commas, so no line becomes a
    bytes object of its own. Within a block, runs of lines that look like hot messages are decoded
    as :class:`HotLine` and the other runs as :class:`LogLine` (:func:`_decode_runs`); if a run
    fails, the whole block is decoded as one LogLine array, and a block holding a bad line, or a
    line holding several values, is decoded line by line so only the bad line is lost.
    """
    data = np.frombuffer(text, dtype=np.uint8)
    newlines = np.flatnonzero(data == _NEWLINE)
    n = len(newlines) + 1
    report.lines += n
    bounds = np.empty(n + 1, dtype=np.int64)  # line i is text[bounds[i] : bounds[i + 1] - 1]
    bounds[0] = 0
    bounds[1:n] = newlines + 1
    bounds[n] = len(text) + 1
    hot = _looks_hot(data, bounds[:n])
    starts = bounds.tolist()
    seqs = (bounds[:n] + pos).tolist()
    commas = memoryview(text.replace(b"\n", b","))
    for b in range(0, n, _BLOCK):
        e = min(b + _BLOCK, n)
        objs = _decode_runs(commas, starts, hot, b, e)
        if objs is None:
            lo, hi = starts[b], starts[e] - 1
            try:
                objs = list(_list_decoder.decode(b"".join((b"[", commas[lo:hi], b"]"))))
            except (msgspec.DecodeError, ValueError):
                objs = []
            if len(objs) != e - b:
                objs = [_decode_one(raw) if raw.strip() else None for raw in text[lo:hi].split(b"\n")]
        yield objs, seqs[b:e]


def _decode_runs(
    commas: memoryview, starts: list[int], hot: np.ndarray[Any, Any], b: int, e: int
) -> list[LogLine | HotLine | None] | None:
    """Lines ``b`` to ``e - 1`` decoded run by run, or None if a run does not decode to one value per line.

    When every run does, decoding the whole block at once gives the same values: the block's array
    is the runs' arrays joined by commas.
    """
    h = hot[b:e]
    cuts = [0, *(np.flatnonzero(h[1:] != h[:-1]) + 1).tolist(), e - b]
    objs: list[LogLine | HotLine | None] = []
    for r0, r1 in itertools.pairwise(cuts):
        array = b"".join((b"[", commas[starts[b + r0] : starts[b + r1] - 1], b"]"))
        got: list[LogLine] | list[HotLine] | None = None
        if h[r0]:
            with contextlib.suppress(msgspec.DecodeError, ValueError):
                got = _hot_decoder.decode(array)
        if got is None or len(got) != r1 - r0:
            try:
                got = _list_decoder.decode(array)
            except (msgspec.DecodeError, ValueError):
                return None
            if len(got) != r1 - r0:
                return None
        objs += got
    return objs


def _looks_hot(data: np.ndarray[Any, Any], starts: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Which lines begin like a line of a hot message (``{"_msg":"Send"`` …), as CometBFT writes them.

    Only a guess of where :class:`HotLine` will decode (a wrong guess costs time, never a value),
    made on three 8-byte words per line: the line's first 8 bytes and the message's first 16.
    """
    if len(data) < 8:
        return np.zeros(len(starts), dtype=bool)
    words = np.ndarray((len(data) - 7,), dtype="<u8", buffer=data, strides=(1,))  # 8 bytes from each offset
    last = len(data) - 8
    opening: np.ndarray[Any, Any] = words[np.minimum(starts, last)] == _OPENING
    first = words[np.minimum(starts + 9, last)]
    second = words[np.minimum(starts + 17, last)]
    hot = np.zeros(len(starts), dtype=bool)
    for value1, mask1, value2, mask2 in _HOT_WORDS:
        hot |= ((first & mask1) == value1) & ((second & mask2) == value2)
    hot &= opening
    return hot


def _line_at(text: bytes, i: int) -> bytes:
    """The line of ``text`` starting at index ``i`` (for skip reports)."""
    stop = text.find(b"\n", i)
    return text[i:] if stop < 0 else text[i:stop]


# The busiest messages (about 95% of a debug log's lines) and their repeat keys (see parse).
_P2P_SEND, _P2P_RECV, _RECEIVE, _PACKET = range(4)
_HOT = {"Send": _P2P_SEND, "TrySend": _P2P_SEND, "Received bytes": _P2P_RECV, "Receive": _RECEIVE,
        "Read PacketMsg": _PACKET}  # fmt: skip
_P2P_KINDS = (K.P2P_SEND, K.P2P_RECV)


def _word(raw: bytes) -> tuple[np.uint64, np.uint64]:
    """(value, mask) matching ``raw`` (≤ 8 bytes) at the start of a little-endian 8-byte word."""
    return np.uint64(int.from_bytes(raw, "little")), np.uint64((1 << 8 * len(raw)) - 1)


_OPENING = _word(b'{"_msg":')[0]  # and the message starts at byte 9
_HOT_WORDS = [(*_word(head[:8]), *_word(head[8:16])) for head in (msg.encode() + b'"' for msg in _HOT)]
_MISS: Any = object()


class JsonLogFormat:
    name = "cometbft-json"
    splittable = True

    def sniff(self, head: bytes) -> bool:
        for raw in head.split(b"\n")[:20]:
            line = raw.strip()
            if not line:
                continue
            if not line.startswith(b"{"):
                return False
            try:
                obj = _one_decoder.decode(line)
            except (msgspec.DecodeError, ValueError):
                continue  # maybe the head cut a line; look at the next
            return obj.msg is not None and obj.ts is not None
        return False

    def identity(self, stream: BinaryIO, limit_bytes: int) -> Identity:
        return scan_identity(stream, limit_bytes, _decode_one)

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
        mapper = MessageMapper(received_b64=True)
        handler_for = mapper.handler
        exact = mapper.exact_handlers
        p2p_refs, recv_refs, packet_refs = mapper.p2p_refs, mapper.recv_refs, mapper.packet_refs
        peer_ids, peer_id = mapper.peer_ids, mapper.peer_id
        src_peers, src_peer = mapper.src_peers, mapper.src_peer
        batch = SharedRowBatch()
        add_row = batch.add_row
        add = batch.own.extend
        skip = report.skip
        texts: Iterator[tuple[int, bytes]]
        if max_line_bytes >= CHUNK_BYTES:
            texts = read_line_blocks(stream, report, start=start, end=end, max_line_bytes=max_line_bytes)
        else:  # only read_lines drops over-long lines that fit in a chunk (leaving an empty line)
            lines_read = read_lines(stream, report, start=start, end=end, max_line_bytes=max_line_bytes)
            texts = ((pos, b"\n".join(lines)) for pos, lines in lines_read)
        for pos, text in texts:
            for objs, seqs in _decoded_blocks(text, pos, report):
                for obj, seq in zip(objs, seqs, strict=True):
                    if obj is None:
                        raw = _line_at(text, seq - pos)
                        if raw.strip():
                            skip("not JSON", f"offset {seq}", raw)
                        continue
                    msg = obj.msg
                    if type(msg) is not str:
                        skip("no _msg", f"offset {seq}", _line_at(text, seq - pos))
                        continue
                    ts = obj.ts  # text: the batch parses the whole column at once (model.SharedRowBatch)
                    hot = _HOT.get(msg)
                    refs: dict[Any, int] | None = None  # where to remember this line if it is new
                    if hot is not None and type(ts) is str:
                        # One of the busiest lines: if it repeats a row of this batch, only its
                        # own columns are new (see MessageMapper.p2p_refs for why this is exact).
                        if hot <= _P2P_RECV:
                            key = obj.msgBytes
                            refs = p2p_refs
                            ref = p2p_refs.get(key) if type(key) is str else None
                            if ref is not None:
                                p = obj.peer
                                peer = (peer_ids.get(p) or peer_id(p)) if type(p) is str else None
                                add((ts, _P2P_KINDS[hot], peer, seq, ref))
                                continue
                        elif hot == _RECEIVE:
                            key = obj.msg_
                            refs = recv_refs
                            ref = recv_refs.get(key) if type(key) is str else None
                            if ref is not None:
                                src = obj.src
                                peer = src_peers.get(src, _MISS) if type(src) is str else None
                                add((ts, K.MSG_RECEIVED, src_peer(src) if peer is _MISS else peer, seq, ref))
                                continue
                        else:
                            pkt = obj.packet
                            if pkt is not None:
                                data = pkt.data
                                size = len(data) * 3 // 4 - data.count("=", -2) if type(data) is str else None
                                key = (pkt.channel_id, pkt.eof, size)
                                refs = packet_refs
                                ref = packet_refs.get(key)
                                if ref is not None:
                                    p = obj.peer
                                    peer = (peer_ids.get(p) or peer_id(p)) if type(p) is str else None
                                    add((ts, K.P2P_PACKET, peer, seq, ref))
                                    continue
                    handler = exact.get(msg) or handler_for(msg)
                    if handler is None:
                        report.skipped["unrecognized message"] += 1
                        continue
                    if type(ts) is not str:
                        skip("malformed timestamp", f"offset {seq}", _line_at(text, seq - pos))
                        continue
                    if type(obj) is HotLine and hot is None:
                        # A wrong guess (say a repeated "_msg" key): the handler may read any field.
                        raw = _line_at(text, seq - pos)
                        obj = _decode_one(raw)
                        if obj is None:
                            skip("not JSON", f"offset {seq}", raw)
                            continue
                    try:
                        ref = add_row(handler(cast(LogLine, obj), ts, seq))
                    except Skip as exc:
                        skip(exc.reason, f"offset {seq}", _line_at(text, seq - pos))
                        continue
                    if refs is not None:  # a hot line's first occurrence in this batch: later ones repeat it
                        refs[key] = ref
            if len(batch) >= batch_rows:
                yield flush_batch(batch, report)
                mapper.new_batch()
                add = batch.own.extend
        if len(batch):
            yield flush_batch(batch, report)
