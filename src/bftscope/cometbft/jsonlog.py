"""CometBFT JSON logs (``log_format = "json"``): one JSON object per line.

Lines are decoded in blocks with one msgspec call per block (a JSON array made of the block's
lines); a block containing a bad line is re-decoded line by line so only the bad line is lost
and counted. Each decoded line goes through :class:`bftscope.cometbft.logmsgs.MessageMapper`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, BinaryIO

import msgspec
import pyarrow as pa

from bftscope.cometbft import kinds as K
from bftscope.cometbft.identity import Identity
from bftscope.cometbft.logmsgs import LogLine, MessageMapper, Skip, scan_identity
from bftscope.ingest.lines import read_lines
from bftscope.ingest.report import ParseReport, flush_batch
from bftscope.model import SharedRowBatch

__all__ = ["JsonLogFormat"]

_BLOCK = 512
_list_decoder = msgspec.json.Decoder(list[LogLine])
_one_decoder = msgspec.json.Decoder(LogLine)


def _decode_one(raw: bytes) -> LogLine | None:
    try:
        return _one_decoder.decode(raw)
    except (msgspec.DecodeError, ValueError):
        return None


def _decode_block(block: list[bytes]) -> list[LogLine | None]:
    """Decode lines with one msgspec call (a JSON array of them); a block holding a bad line, or a
    line holding several values, is decoded line by line so only the bad line is lost."""
    try:
        objs: list[LogLine | None] = list(_list_decoder.decode(b"[" + b",".join(block) + b"]"))
    except (msgspec.DecodeError, ValueError):
        objs = []
    if len(objs) == len(block):
        return objs
    return [_decode_one(raw) if raw.strip() else None for raw in block]


# The busiest messages (about 95% of a debug log's lines) and their repeat keys (see parse).
_P2P_SEND, _P2P_RECV, _RECEIVE, _PACKET = range(4)
_HOT = {"Send": _P2P_SEND, "TrySend": _P2P_SEND, "Received bytes": _P2P_RECV, "Receive": _RECEIVE,
        "Read PacketMsg": _PACKET}  # fmt: skip
_P2P_KINDS = (K.P2P_SEND, K.P2P_RECV)
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
        add = batch.lines.append
        skip = report.skip
        for pos, lines in read_lines(stream, report, start=start, end=end, max_line_bytes=max_line_bytes):
            report.lines += len(lines)
            for b in range(0, len(lines), _BLOCK):
                block = lines[b : b + _BLOCK]
                off = pos
                for raw, obj in zip(block, _decode_block(block), strict=True):
                    seq = off
                    off += len(raw) + 1
                    if obj is None:
                        if raw.strip():
                            skip("not JSON", f"offset {seq}", raw)
                        continue
                    msg = obj.msg
                    if type(msg) is not str:
                        skip("no _msg", f"offset {seq}", raw)
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
                        skip("malformed timestamp", f"offset {seq}", raw)
                        continue
                    try:
                        ref = add_row(handler(obj, ts, seq))
                    except Skip as exc:
                        skip(exc.reason, f"offset {seq}", raw)
                        continue
                    if refs is not None:  # a hot line's first occurrence in this batch: later ones repeat it
                        refs[key] = ref
                pos = off
            if len(batch) >= batch_rows:
                yield flush_batch(batch, report)
                mapper.new_batch()
                add = batch.lines.append
        if len(batch):
            yield flush_batch(batch, report)
