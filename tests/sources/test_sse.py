"""The SSE frame parser: the WHATWG rules one by one, and on the real Casper transcripts, any split of the
bytes into chunks (and any line-ending style) gives the same events."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from bftscope.sources.base import Frame
from bftscope.sources.sse import SSEParser
from tests.conftest import require_data


def _parse(chunks: list[bytes]) -> list[Frame]:
    parser = SSEParser()
    out: list[Frame] = []
    for c in chunks:
        out.extend(parser.feed(c))
    return out


def _transcripts() -> list[bytes]:
    folder = require_data("casper-sse")
    files = sorted(folder.glob("*.sse"))
    assert len(files) >= 4, files
    return [f.read_bytes() for f in files]


def test_fields_comments_multiline_data_and_ids() -> None:
    text = (b"\xef\xbb\xbf: keep-alive\n"
            b"event: add\ndata: first\ndata:  second\nid: 7\nretry: 1500\n\n"
            b"data\n\n"  # a field with no colon: empty data, still an event
            b"id\n: the id was reset to empty\nfoo: ignored\nretry: 2x\ndata:x\n\n"
            b"event: lonely\n\n"  # no data: nothing dispatched
            b"data: unterminated")  # fmt: skip
    parser = SSEParser()
    frames = parser.feed(text)
    assert frames == [Frame(b"first\n second", id="7", event="add", retry=1500),
                      Frame(b"", id="7", event="message", retry=1500),
                      Frame(b"x", id="", event="message", retry=1500)]  # fmt: skip
    assert parser.comments == 2 and parser.pending()  # the unterminated event is held, not dispatched


def test_cr_lf_split_across_chunks_is_one_line_end() -> None:
    assert _parse([b"data: a\r", b"\n\r", b"\ndata: b\r\r"]) == [Frame(b"a"), Frame(b"b")]
    assert _parse([b"data: a\r\rdata: b\n\n"]) == [Frame(b"a"), Frame(b"b")]


def test_real_transcripts_have_events() -> None:
    frames = [f for t in _transcripts() for f in _parse([t])]
    assert any(f.data.startswith(b'{"DeployAccepted"') and f.id == "21821471" for f in frames)
    assert all(f.data for f in frames)


def test_an_empty_chunk_between_cr_and_lf_ends_one_line_not_two() -> None:
    # Found by the property below (cuts [28, 28], CRLF): an empty read between the halves of a CRLF
    # made the LF end a second, empty line, which dispatched an event early.
    text = b"data: a\r\ndata: b\r\n\r\n"
    assert _parse([text[:8], b"", text[8:]]) == _parse([text]) == [Frame(b"a\nb")]


@settings(max_examples=60, deadline=None)
@given(data=st.data(), eol=st.sampled_from([b"\n", b"\r\n", b"\r"]))
def test_any_split_of_a_real_transcript_gives_the_same_events(data: st.DataObject, eol: bytes) -> None:
    for raw in _transcripts():
        text = raw.replace(b"\r\n", b"\n").replace(b"\n", eol)
        whole = _parse([text])
        cuts = sorted(data.draw(st.lists(st.integers(0, len(text)), max_size=40)))
        pieces = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
        assert _parse(pieces) == whole
        # one byte at a time is the harshest split (only for the small transcripts: it is slow)
        if len(text) < 20_000:
            assert _parse([text[i : i + 1] for i in range(len(text))]) == whole


def _reference(stream: bytes) -> list[Frame]:
    """The standard's interpretation, written plainly: the whole stream decoded as UTF-8 (invalid bytes replaced),
    split into lines, each line's field applied, an event dispatched at a blank line."""
    text = stream.decode("utf-8", errors="replace").removeprefix("\ufeff")
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")[:-1]  # the last line is not finished
    out: list[Frame] = []
    data: list[str] = []
    event, last_id, retry = "", None, None
    for line in lines:
        if not line:
            if data:
                out.append(Frame("\n".join(data).encode(), id=last_id, event=event or "message", retry=retry))
            data, event = [], ""
            continue
        if line.startswith(":"):
            continue
        name, colon, value = line.partition(":")
        value = value[1:] if colon and value.startswith(" ") else value
        if name == "data":
            data.append(value)
        elif name == "event":
            event = value
        elif name == "id" and "\0" not in value:
            last_id = value
        elif name == "retry" and value.isascii() and value.isdigit():
            retry = int(value)
    return out


_PIECES = [b"data:", b"data: ", b"id:", b"id: 7", b"event:x", b"retry:15", b": c", b"\n", b"\r", b"\r\n", b"x",
           b"{\"a\":1}", b" ", b"\xc3\xa9", b"\xff", b"\xc3", b"\0", b"dat"]  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(parts=st.lists(st.sampled_from(_PIECES), max_size=60), data=st.data())
def test_any_stream_parses_as_the_standard_reads_it(parts: list[bytes], data: st.DataObject) -> None:
    # line ends of any style, comments, every field, multi-byte and invalid UTF-8 (inside data lines too), split
    # anywhere: the parser's byte-level fast paths give what the plain reading of the standard gives
    stream = b"".join(parts)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=6)))
    pieces = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    assert _parse(pieces) == _parse([stream]) == _reference(stream)
