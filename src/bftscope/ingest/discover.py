"""Find the inputs behind the paths a user names, and recognise each one's format.

A path may be a file (any name: the format is detected from content), a node home directory
(``config/`` + ``data/``: its consensus WALs and logs are taken, all attributed to that node), or
a folder holding any number of those (a whole testnet). Inside folders only files that look like
node output are considered (``*.log*``, ``*.json*``, ``*.txt``, ``*.gz``, ``cs.wal/wal*``) so a
node's databases are not read. Symbolic links are not followed out of the named folders.
"""

from __future__ import annotations

import gzip
import os
import re
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from bftscope.cometbft.home import is_node_home
from bftscope.errors import InputError
from bftscope.ingest.source import FileFormat

__all__ = ["InputFile", "detect_format", "discover", "open_input"]

_LOG_NAME = re.compile(r"\.(log|jsonl?|txt|out)(\.\d+)?(\.gz)?$|\.gz$", re.IGNORECASE)
_WAL_NAME = re.compile(r"^wal(\.\d+)?$")
HEAD_BYTES = 64 * 1024
# Node state files that share a log-like extension.
_NOT_LOGS = frozenset({"genesis.json", "node_key.json", "priv_validator_key.json", "priv_validator_state.json",
                       "addrbook.json", "ground_truth.json"})  # fmt: skip


@dataclass(frozen=True)
class InputFile:
    path: Path
    name: str  # what reports show: relative to the folder the user named
    home: Path | None  # node home directory the file belongs to, if any
    gz: bool


def _is_gz(path: Path) -> bool:
    try:
        with path.open("rb") as fh:
            return fh.read(2) == b"\x1f\x8b"
    except OSError:
        return False


def _home_of(path: Path, roots: list[Path]) -> Path | None:
    for parent in path.parents:
        if is_node_home(parent):
            return parent
        if parent in roots:
            break
    return None


def _walk(root: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        # Skip node databases wholesale: they are large and never logs.
        dirnames[:] = [d for d in dirnames if not d.endswith(".db")]
        here = Path(dirpath)
        if here.name == "config" and is_node_home(here.parent):
            continue  # read for identity (cometbft/home.py), never as event sources
        for fn in sorted(filenames):
            p = here / fn
            if fn in _NOT_LOGS or p.is_symlink() or not p.is_file():
                continue
            if (here.name == "cs.wal" and _WAL_NAME.match(fn)) or _LOG_NAME.search(fn):
                yield p


def _wal_order(p: Path) -> tuple[str, int]:
    # wal.000, wal.001 … precede the head file "wal".
    if p.parent.name == "cs.wal" and _WAL_NAME.match(p.name):
        suffix = p.name[4:]
        return (str(p.parent), int(suffix) if suffix else 1 << 30)
    return (str(p), 0)


def discover(paths: list[Path]) -> list[InputFile]:
    """Expand user paths into input files, each at most once. Raises InputError for a missing path."""
    out: dict[Path, InputFile] = {}
    for given in paths:
        if not given.exists():
            raise InputError(f"no such file or directory: {given}")
        if given.is_file():
            real = given.resolve()
            home = _home_of(real, [])
            out.setdefault(real, InputFile(real, given.name, home, _is_gz(real)))
            continue
        root = given.resolve()
        for p in _walk(root):
            real = p.resolve()
            if not real.is_relative_to(root):
                continue
            name = str(p.relative_to(root))
            home = _home_of(p, [root.parent])
            out.setdefault(real, InputFile(real, f"{given.name}/{name}", home, _is_gz(real)))
    return sorted(out.values(), key=lambda f: _wal_order(f.path))


@contextmanager
def open_input(f: InputFile) -> Iterator[tuple[BinaryIO, BinaryIO]]:
    """Open an input: ``(stream to parse, raw file)``; the raw file's position tracks progress."""
    raw = f.path.open("rb")
    try:
        if f.gz:
            with gzip.GzipFile(fileobj=raw, mode="rb") as gz:
                yield gz, raw  # type: ignore[misc]
        else:
            yield raw, raw
    finally:
        raw.close()


def detect_format(f: InputFile, formats: list[FileFormat]) -> tuple[FileFormat | None, str | None]:
    """The first format whose ``sniff`` accepts the file's head, or ``(None, reason)``."""
    try:
        with open_input(f) as (stream, _):
            head = stream.read(HEAD_BYTES)
    except (OSError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        return None, f"unreadable: {exc}"
    if not head:
        return None, "empty file"
    for fmt in formats:
        if fmt.sniff(head):
            return fmt, None
    return None, "unrecognized format"
