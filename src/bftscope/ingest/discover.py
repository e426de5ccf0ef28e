"""Find the inputs behind the paths a user names, and recognise each one's format.

A path may be a file (any name: the format is detected from content), a node home directory
(``config/`` + ``data/``: its consensus WALs and logs are taken, all attributed to that node), or
a folder holding any number of those (a whole testnet). Every file found inside a folder is a
candidate whatever its name — ``wal`` outside ``cs.wal/``, ``node.wal``, a file called ``b`` — and
its content decides; nothing found is dropped silently: what is not read is returned as
:class:`Skipped` with its reason. Only two things are skipped by name, and both are reported: node
databases (``*.db/`` folders: large, never logs) and a node home's ``config/`` (read for the
node's identity; what a node home is, is the chain family's). Symbolic links are followed, to files and folders,
wherever they point; dangling links, link loops and folders reached a second time are reported.
FIFOs, devices and sockets are reported as "not a regular file" and never opened (a FIFO would
block the ingest). A path named on the command line that does not exist is reported the same
way, and the other paths are still ingested.
"""

from __future__ import annotations

import errno
import gzip
import os
import stat
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from bftscope.families import registry
from bftscope.ingest.source import FileFormat

__all__ = ["Discovery", "InputFile", "Skipped", "detect_format", "discover", "gzip_cut", "open_input"]

HEAD_BYTES = 64 * 1024
_KINDS = ((stat.S_ISFIFO, "FIFO"), (stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device"),
          (stat.S_ISSOCK, "socket"))  # fmt: skip


@dataclass(frozen=True)
class InputFile:
    path: Path
    name: str  # what reports show: relative to the folder the user named
    home: Path | None  # node home directory the file belongs to, if any
    gz: bool


@dataclass(frozen=True)
class Skipped:
    """A path found and not read: ``status`` is "skipped" or "duplicate" (a file already found)."""

    name: str
    status: str
    reason: str
    duplicate_of: str | None = None


@dataclass
class Discovery:
    files: list[InputFile] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)


def _is_gz(path: Path) -> bool:
    try:
        with path.open("rb") as fh:
            return fh.read(2) == b"\x1f\x8b"
    except OSError:
        return False


def is_node_home(path: Path) -> bool:
    """A directory that some chain family knows as one node's home."""
    return any(fam.is_node_home(path) for fam in registry.families())


def _home_of(path: Path, roots: list[Path]) -> Path | None:
    for parent in path.parents:
        if is_node_home(parent):
            return parent
        if parent in roots:
            break
    return None


def _kind(path: Path) -> tuple[str, str | None]:
    """``("file" | "dir" | "skip", reason)`` for a path, following symbolic links."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return "skip", "dangling symbolic link" if path.is_symlink() else "no such file or directory"
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "skip", "symbolic link loop"
        return "skip", f"cannot be read: {exc.strerror or exc}"
    if stat.S_ISDIR(st.st_mode):
        return "dir", None
    if stat.S_ISREG(st.st_mode):
        return "file", None
    what = next((name for test, name in _KINDS if test(st.st_mode)), "special file")
    return "skip", f"not a regular file ({what})"


class _Finder:
    """One discovery: the files found (each real file once) and what was skipped."""

    def __init__(self) -> None:
        self.found: dict[Path, InputFile] = {}
        self.out = Discovery()

    def add(self, path: Path, name: str, home: Path | None) -> None:
        real = path.resolve()
        first = self.found.get(real)
        if first is not None:
            self.out.skipped.append(Skipped(name, "duplicate", f"same file as {first.name}", first.name))
            return
        self.found[real] = InputFile(real, name, home, _is_gz(real))

    def skip(self, name: str, reason: str) -> None:
        self.out.skipped.append(Skipped(name, "skipped", reason))

    def walk(self, given: Path) -> None:
        root = given.absolute()
        visited = {root.resolve()}
        for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
            here = Path(dirpath)

            def shown(leaf: str, here: Path = here) -> str:
                return f"{given.name}/{(here / leaf).relative_to(root)}"

            keep = []
            for d in sorted(dirnames):
                if d.endswith(".db"):  # node databases: large and never logs
                    self.skip(shown(d), "node database (not read)")
                    continue
                real = (here / d).resolve()
                if real in visited:
                    self.skip(shown(d), "symbolic link loop (a folder already searched)")
                    continue
                visited.add(real)
                keep.append(d)
            dirnames[:] = keep
            config = here.name == "config" and is_node_home(here.parent)
            for fn in sorted(filenames):
                kind, reason = _kind(here / fn)
                if kind != "file":
                    self.skip(shown(fn), reason or "not a regular file")
                elif config:
                    self.skip(shown(fn), "node configuration (read for the node's identity)")
                else:
                    self.add(here / fn, shown(fn), _home_of(here / fn, [root.parent]))


def _file_order(p: Path) -> tuple[str, int]:
    # A family may order its files (rotated files before their head file); others sort by path.
    for fam in registry.families():
        key = fam.file_order(p)
        if key is not None:
            return tuple(key)
    return (str(p), 0)


def discover(paths: list[Path]) -> Discovery:
    """Expand user paths into input files, each real file at most once, and what was skipped and why."""
    finder = _Finder()
    for given in paths:
        kind, reason = _kind(given)
        if kind == "dir":
            finder.walk(given)
        elif kind == "file":
            finder.add(given, given.name, _home_of(given.resolve(), []))
        else:
            finder.skip(str(given), reason or "not a regular file")
    out = finder.out
    out.files = sorted(finder.found.values(), key=lambda f: _file_order(f.path))
    return out


class _TolerantGzip:
    """A gzip stream that ends where the compressed data ends, even when that is before the gzip
    trailer (a file cut by a full disk or an interrupted copy): what decompressed is kept, and the cut
    is recorded in :attr:`cut` for the parse report instead of raising ``EOFError`` and losing it all.
    """

    def __init__(self, gz: gzip.GzipFile) -> None:
        self._gz = gz
        self.cut: str | None = None  # why the stream stopped early, if it did
        self.out = 0  # decompressed bytes delivered

    def _stop(self, exc: Exception) -> None:
        what = "truncated" if isinstance(exc, EOFError) else "corrupt"
        self.cut = f"gzip stream {what} after {self.out:,} bytes ({exc})"

    def read(self, n: int = -1) -> bytes:
        parts: list[bytes] = []
        want = n
        while self.cut is None and want != 0:
            try:
                # read1: one decompression step at a time, so an error loses nothing decompressed before it
                piece = self._gz.read1(want if want > 0 else 1 << 20)
            except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
                self._stop(exc)
                break
            if not piece:
                break
            parts.append(piece)
            self.out += len(piece)
            if want > 0:
                want -= len(piece)
        return b"".join(parts)

    def readline(self, limit: int = -1) -> bytes:
        if self.cut is not None:
            return b""
        try:
            line = self._gz.readline(limit)
        except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
            self._stop(exc)
            return b""
        self.out += len(line)
        return line

    def seekable(self) -> bool:
        return self._gz.seekable()

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._gz.seek(offset, whence)

    def tell(self) -> int:
        return self._gz.tell()


@contextmanager
def open_input(f: InputFile) -> Iterator[tuple[BinaryIO, BinaryIO]]:
    """Open an input: ``(stream to parse, raw file)``; the raw file's position tracks progress.

    A ``.gz`` stream is a :class:`_TolerantGzip`: check its ``cut`` after reading (:func:`gzip_cut`).
    """
    raw = f.path.open("rb")
    try:
        if f.gz:
            with gzip.GzipFile(fileobj=raw, mode="rb") as gz:
                yield _TolerantGzip(gz), raw  # type: ignore[misc]
        else:
            yield raw, raw
    finally:
        raw.close()


def gzip_cut(stream: BinaryIO) -> str | None:
    """Why a stream from :func:`open_input` ended before its data did (a cut ``.gz``), or None."""
    return stream.cut if isinstance(stream, _TolerantGzip) else None


def detect_format(f: InputFile, formats: list[FileFormat]) -> tuple[FileFormat | None, str | None]:
    """The first format whose ``sniff`` accepts the file's head, or ``(None, reason)``."""
    try:
        with open_input(f) as (stream, _):
            head = stream.read(HEAD_BYTES)
            cut = gzip_cut(stream)
    except (OSError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        return None, f"unreadable: {exc}"
    if not head:
        return None, f"unreadable: {cut}" if cut else "empty file"
    for fmt in formats:
        if fmt.sniff(head):
            return fmt, None
    for fam in registry.families():
        if why := fam.not_a_log(f.path.name):
            return None, why
    return None, "unrecognized format"
