"""The file transport and the file-format decoder: the frame path (byte chunks split anywhere) gives the
same events as the batch fast path on a real CometBFT JSON log."""

from __future__ import annotations

import asyncio

import pyarrow as pa

from bftscope.errors import TransportClosed
from bftscope.families.cometbft.parse.formats import format_by_name
from bftscope.ingest.discover import discover
from bftscope.sources.file import FileRangeTransport
from bftscope.sources.fileformat import FileFormatDecoder
from tests.conftest import require_data


def test_chunked_frames_decode_like_the_fast_path() -> None:
    f = discover([require_data("cometbft/cometbft-1.x-json-debug-lines.jsonl")]).files[0]
    fmt = format_by_name("cometbft-json")
    fast = FileFormatDecoder(fmt)
    transport = FileRangeTransport(f)
    expected = pa.concat_tables(list(fast.decode_range(transport)))
    assert transport.last_position > 0 and transport.last_cut is None

    async def frames() -> pa.Table:
        chunked = FileRangeTransport(f, chunk_size=4093)  # chunks end mid-line
        decoder = FileFormatDecoder(fmt)
        tables = []
        await chunked.open()
        try:
            while True:
                tables += decoder.feed(await chunked.receive())
        except TransportClosed:
            tables += decoder.finish()
        await chunked.close()
        assert decoder.report.events == fast.report.events and decoder.report.skipped == fast.report.skipped
        return pa.concat_tables(tables)

    got = asyncio.run(frames())
    assert expected.num_rows > 0
    # line numbers restart in each chunk's parse, so compare everything but where a row came from
    keep = [c for c in expected.column_names if c not in ("seq", "line")]
    assert got.select(keep).to_pylist() == expected.select(keep).to_pylist()
