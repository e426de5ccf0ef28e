"""receive_multipart: real multipart bodies, fed in odd chunk sizes, checked byte for byte on disk."""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import tracemalloc
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from bftscope.control.uploads import (
    INCOMING_PREFIX,
    UploadLimits,
    UploadResult,
    display_name,
    receive_multipart,
    safe_filename,
    split_extension,
)
from bftscope.errors import InputError, PayloadTooLargeError, StoreError

B = "----bftscopeTestBoundary7MA4YWxk"
CT = f"multipart/form-data; boundary={B}"


def field(name: str, value: str) -> bytes:
    return f'--{B}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode() + value.encode() + b"\r\n"


def file_part(filename: str | bytes, data: bytes, name: str = "logfiles") -> bytes:
    fn = filename if isinstance(filename, bytes) else filename.encode()
    head = f'--{B}\r\nContent-Disposition: form-data; name="{name}"; filename="'.encode() + fn + b'"\r\n'
    return head + b"Content-Type: application/octet-stream\r\n\r\n" + data + b"\r\n"


def body(*parts: bytes) -> bytes:
    return b"".join(parts) + f"--{B}--\r\n".encode()


async def chunked(data: bytes, size: int) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


def receive(
    data: bytes, dest: Path, limits: UploadLimits | None = None, size: int = 65536, ct: str = CT,
    known: dict[str, str] | None = None,
) -> UploadResult:  # fmt: skip
    return asyncio.run(receive_multipart(chunked(data, size), ct, dest, limits or UploadLimits(), known=known))


def on_disk(dest: Path) -> list[str]:
    return sorted(p.name for p in dest.iterdir())


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    d = tmp_path / "uploads"
    d.mkdir()
    return d


@pytest.mark.parametrize("chunk", [1, 7, 64 * 1024])
def test_files_and_fields_byte_identical_in_any_chunking(dest: Path, chunk: int) -> None:
    rng = random.Random(chunk)
    # Binary data holding near-misses of the delimiter; over the 1 MiB write buffer except byte by byte (slow).
    near_miss = f"\r\n--{B[:-1]}x\r\n--".encode()
    big = b"".join(rng.randbytes(rng.randrange(1, 5000)) + near_miss for _ in range(600 if chunk > 1 else 120))
    files = {"node0.log": b"I[2024-01-01|00:00:00.000] enterNewRound height=1\n" * 50, "wal": big, "empty.log": b""}
    data = body(
        field("name", "testnet run 7"),
        *(file_part(n, d) for n, d in files.items()),
        field("description", "four validators, één partition ✓"),
    )
    result = receive(data, dest, size=chunk)
    assert result.fields == {"name": "testnet run 7", "description": "four validators, één partition ✓"}
    assert [f.stored_name for f in result.files] == list(files)
    for saved in result.files:
        content = files[saved.original_filename]
        assert (dest / saved.stored_name).read_bytes() == content
        assert saved.size == len(content)
        assert saved.sha256 == hashlib.sha256(content).hexdigest()
    assert on_disk(dest) == sorted(files)


@pytest.mark.parametrize(
    ("client_name", "stored", "shown"),
    [
        ("../../etc/passwd", "passwd", "passwd"),
        ("..\\..\\x", "x", "x"),
        ("/abs/path", "path", "path"),
        ("C:\\Users\\me\\node0.log", "node0.log", "node0.log"),
        ("a\x00b\nc.log", "abc.log", "abc.log"),
        ("..", "upload", ".."),
        ("...hidden", "hidden", "...hidden"),
        ("节点 0.log", "___0.log", "节点 0.log"),
        ("-rf", "_rf", "-rf"),
        ("x..y.tar.gz", "x.y.tar.gz", "x..y.tar.gz"),
    ],
)
def test_client_names_are_sanitised_into_dest(dest: Path, client_name: str, stored: str, shown: str) -> None:
    result = receive(body(file_part(client_name.encode(), b"data")), dest)
    assert [(f.stored_name, f.original_filename) for f in result.files] == [(stored, shown)]
    assert on_disk(dest) == [stored]
    assert list(dest.parent.iterdir()) == [dest]  # nothing landed beside the upload folder


def test_safe_names_and_extensions() -> None:
    assert split_extension("node0.log.gz") == ("node0", ".log.gz")
    assert split_extension("home.tar.gz") == ("home", ".tar.gz")
    assert split_extension("cs.wal.gz") == ("cs", ".wal.gz")
    assert split_extension("v0.34.tgz") == ("v0.34", ".tgz")
    assert split_extension("wal") == ("wal", "")
    long = safe_filename("a" * 500 + ".tar.gz")
    assert len(long) == 200 and long.endswith(".tar.gz")
    assert safe_filename("") == "upload" and display_name("dir/\x07bell") == "bell"


def test_duplicates_and_existing_names_get_a_counter(dest: Path, tmp_path: Path) -> None:
    (dest / "home.tar.gz").write_bytes(b"earlier upload")
    outside = tmp_path / "target"
    outside.write_bytes(b"not yours")
    (dest / "evil.log").symlink_to(outside)
    names = ["node.log.gz", "node.log.gz", "home.tar.gz", "evil.log"]
    data = body(*(file_part(n, f"{i}: {n}".encode()) for i, n in enumerate(names)))
    result = receive(data, dest)
    assert [f.stored_name for f in result.files] == ["node.log.gz", "node-1.log.gz", "home-1.tar.gz", "evil-1.log"]
    assert (dest / "home.tar.gz").read_bytes() == b"earlier upload"
    assert outside.read_bytes() == b"not yours"
    assert (dest / "node-1.log.gz").read_bytes() == b"1: node.log.gz"


def test_browser_no_file_chosen_is_ignored(dest: Path) -> None:
    result = receive(body(field("name", "x"), file_part("", b"")), dest)
    assert result.files == [] and on_disk(dest) == []


@pytest.mark.parametrize(
    ("limits", "parts"),
    [
        (UploadLimits(max_file_bytes=1000), [file_part("ok.log", b"x" * 1000), file_part("big.log", b"x" * 1001)]),
        (UploadLimits(max_request_bytes=5000), [file_part("a.log", b"x" * 3000), file_part("b.log", b"x" * 3000)]),
        (UploadLimits(max_files=2), [file_part(f"{i}.log", b"x" * 300_000) for i in range(3)]),
        (UploadLimits(max_field_bytes=10), [file_part("a.log", b"x"), field("name", "x" * 11)]),
        (UploadLimits(max_text_fields=2), [file_part("a.log", b"x"), *(field(f"f{i}", "v") for i in range(3))]),
    ],
    ids=["file", "request", "count", "field", "fields"],
)
def test_limits_give_413_and_leave_nothing(dest: Path, limits: UploadLimits, parts: list[bytes]) -> None:
    with pytest.raises(PayloadTooLargeError) as err:
        receive(body(*parts), dest, limits, size=4096)
    assert err.value.status == 413 and err.value.code == "payload_too_large"
    assert on_disk(dest) == []


@pytest.mark.parametrize(
    ("data", "ct"),
    [
        (b"this is not multipart at all", CT),
        (body(file_part("a.log", b"x" * 400_000))[:-100], CT),  # truncated: no closing boundary
        (file_part("a.log", b"x" * 10) + file_part("b.log", b"y" * 400_000)[:-20], CT),
        (body(file_part("a.log", b"x")), "multipart/form-data"),  # no boundary
        (body(file_part("a.log", b"x")), "application/json"),
        (body(file_part("a.log", b"x")), "multipart/form-data; boundary=" + "b" * 300),
        (body(field("logfiles", "no filename")), CT),
        (body(file_part("a.log", b"x"), file_part("x.exe", b"y", name="attachment")), CT),
        (body(f'--{B}\r\nContent-Type: text/plain\r\n\r\nno disposition\r\n'.encode()), CT),
        (body(file_part("a.log", b"x"), field("name", "a"), field("name", "b")), CT),
        (body(f'--{B}\r\nContent-Disposition: form-data; name="name"\r\n\r\n\xff\r\n'.encode("latin-1")), CT),
    ],
    ids=[
        "garbage", "truncated", "truncated-2nd", "no-boundary", "json", "long-boundary", "no-filename",
        "other-file-field", "no-disposition", "repeated-field", "bad-utf8",
    ],
)
def test_malformed_bodies_give_400_and_leave_nothing(dest: Path, data: bytes, ct: str) -> None:
    with pytest.raises(InputError) as err:
        receive(data, dest, ct=ct)
    assert err.value.status == 400
    assert on_disk(dest) == []


def test_failing_stream_removes_partial_files(dest: Path) -> None:
    async def broken() -> AsyncIterator[bytes]:
        yield file_part("done.log", b"complete") + file_part("half.log", b"x" * 600_000)[:400_000]
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        asyncio.run(receive_multipart(broken(), CT, dest, UploadLimits()))
    assert on_disk(dest) == []


def test_missing_dest_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StoreError):
        receive(body(file_part("a.log", b"x")), tmp_path / "nope")


def test_200_mb_upload_streams_in_flat_memory(dest: Path) -> None:
    size, block = 200 * 1000 * 1000, os.urandom(64 * 1024)
    expected = hashlib.sha256()

    def blocks() -> Iterator[bytes]:
        full, rest = divmod(size, len(block))
        yield from (block for _ in range(full))
        yield block[:rest]

    async def stream() -> AsyncIterator[bytes]:
        yield field("name", "big") + file_part("big.log", b"")[:-2]  # headers only, data follows
        for b in blocks():
            expected.update(b)
            yield b
        yield f"\r\n--{B}--\r\n".encode()

    tracemalloc.start()
    try:
        result = asyncio.run(receive_multipart(stream(), CT, dest, UploadLimits()))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 32 * 1024 * 1024, f"peak traced memory {peak / 2**20:.1f} MiB"
    [saved] = result.files
    assert saved.size == size == (dest / "big.log").stat().st_size
    assert saved.sha256 == expected.hexdigest()


def test_the_same_bytes_are_kept_once(dest: Path) -> None:
    log = b"I[2024-01-01|00:00:00.000] enterNewRound height=1\n" * 1000
    data = body(file_part("node0.log", log), file_part("other.log", b"different"), file_part("dir/node0.log", log),
                file_part("copy.log", log))  # fmt: skip
    result = receive(data, dest, size=4096)
    assert [f.stored_name for f in result.files] == ["node0.log", "other.log"]
    assert [(d.original_filename, d.same_as) for d in result.duplicates] == [("node0.log", "node0.log"),
                                                                              ("copy.log", "node0.log")]  # fmt: skip
    assert on_disk(dest) == ["node0.log", "other.log"] and (dest / "node0.log").read_bytes() == log
    # against what the simulation already holds, too
    again = receive(body(file_part("again.log", log), file_part("new.log", b"new")), dest,
                    known={f.sha256: f.stored_name for f in result.files})  # fmt: skip
    assert [f.stored_name for f in again.files] == ["new.log"]
    assert [(d.original_filename, d.same_as) for d in again.duplicates] == [("again.log", "node0.log")]
    assert on_disk(dest) == ["new.log", "node0.log", "other.log"]


def test_a_part_still_arriving_has_no_real_name(dest: Path) -> None:
    """A crash (kill -9) mid-part must never leave a cut file under a name processing would take."""
    seen: list[list[str]] = []
    whole = body(file_part("done.log", b"complete"), file_part("wal", b"w" * 3_000_000))
    cut = whole.index(b"w" * 10) + 2_000_000  # over the 1 MiB write buffer: part of "wal" is on disk

    async def stream() -> AsyncIterator[bytes]:
        yield whole[:cut]
        seen.append(on_disk(dest))
        yield whole[cut:]

    result = asyncio.run(receive_multipart(stream(), CT, dest, UploadLimits()))
    incoming, done = seen[0]  # sorted: the hidden name first
    assert done == "done.log" and incoming.startswith(INCOMING_PREFIX)
    assert on_disk(dest) == ["done.log", "wal"] and [f.stored_name for f in result.files] == ["done.log", "wal"]
