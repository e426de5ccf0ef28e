"""A Casper network's write journal (docs/casper.md "Journal"): where a write is durable before the store has it.

The sink decides a batch (which events and entities are new, their ``out_id`` s), appends the rows it will insert
to the journal as one record and syncs it to disk; from then on the batch is durable and is published at once,
while a second thread inserts the records into the store in larger transactions. DuckDB's commit, and above all
the checkpoint a commit runs when its write-ahead log is full (100–400 ms on this machine), no longer sit between
an event's receipt and its subscribers.

Files: ``<dir>/<first seq>.journal``, each a sequence of records ``magic, seq (u64), length (u32), crc32 (u32),
payload``. A record is durable once :meth:`Journal.append` returns. Opening a journal reads every file: a torn
record at the end of the newest file (a crash mid-append: never published) is cut off and counted; damage
anywhere else ends the reading of that file, which is kept aside as ``*.corrupt`` and reported, never deleted.
:meth:`Journal.applied` deletes the files whose records the store holds, and starts the current file afresh
once all of it is applied, so the journal holds what the store does not yet (plus at most one file's worth).
"""

from __future__ import annotations

import fcntl
import logging
import os
import struct
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Final

from bftscope.errors import StoreError

__all__ = ["Journal", "JournalReport"]

log = logging.getLogger(__name__)

MAGIC: Final = b"BFJ1"
_HEAD: Final = struct.Struct("<4sQII")  # magic, seq, payload length, crc32 of the payload
MAX_RECORD: Final = 1 << 31  # a length above this is damage, not a record
SEGMENT_BYTES: Final = 64 * 1024 * 1024


@dataclass
class JournalReport:
    """What opening a journal found: records not yet applied, bytes of a torn last record cut off, files
    kept aside as damaged."""

    pending: int = 0
    torn_bytes: int = 0
    corrupt_files: int = 0


def _name(seq: int) -> str:
    return f"{seq:020d}.journal"


class Journal:
    """The journal in ``directory``; ``applied``: the last sequence number the store already holds (records at
    or below it are not returned and their files are deleted). ``sync``: fsync each append (off only in tests
    of speed)."""

    def __init__(self, directory: Path, applied: int = 0, *, segment_bytes: int = SEGMENT_BYTES,
                 sync: bool = True, wait_s: float = 30.0) -> None:  # fmt: skip
        self.dir = directory
        self.segment_bytes = segment_bytes
        self.sync = sync
        self.report = JournalReport()
        self._lock = threading.Lock()
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._owner = _own(directory / "lock", wait_s)  # one writer: a sink still closing is waited for
        self._files: list[tuple[int, Path]] = []  # (first seq, path), oldest first; the last one is written
        self._last_of: dict[Path, int] = {}  # the last seq each file holds
        self._pending: list[tuple[int, Path, int, int]] = []  # records after ``applied``: seq, file, offset, size
        last = applied
        files = sorted(directory.glob("*.journal"))
        for i, path in enumerate(files):
            last = max(last, self._scan(path, applied, newest=i == len(files) - 1))
        self.next_seq = last + 1
        self._out: BinaryIO | None = None
        self._out_path: Path | None = None
        self._out_size = 0
        self.report.pending = len(self._pending)
        self.applied(applied)

    # --- reading -------------------------------------------------------------------------------------------------

    def _scan(self, path: Path, applied: int, *, newest: bool) -> int:
        """Index the records of ``path``; returns the last seq it holds (0 when none)."""
        last = 0
        size = path.stat().st_size
        found: list[tuple[int, Path, int, int]] = []
        with path.open("rb") as f:
            offset = 0
            while offset < size:
                head = f.read(_HEAD.size)
                bad = len(head) < _HEAD.size
                if not bad:
                    magic, seq, length, crc = _HEAD.unpack(head)
                    bad = magic != MAGIC or length > MAX_RECORD or seq <= last
                    if not bad:
                        payload = f.read(length)
                        bad = len(payload) < length or zlib.crc32(payload) != crc
                if bad:
                    if newest:  # a crash in the middle of an append: the record was never acknowledged
                        self.report.torn_bytes += size - offset
                        log.warning("journal %s: cut off %d bytes of a torn record at offset %d", path,
                                    size - offset, offset)  # fmt: skip
                        with path.open("r+b") as w:
                            w.truncate(offset)
                            os.fsync(w.fileno())
                    else:
                        self.report.corrupt_files += 1
                        kept = path.with_suffix(".corrupt")
                        log.error("journal %s: damaged at offset %d of %d; the records after it are not applied; "
                                  "the file is kept as %s", path, offset, size, kept)  # fmt: skip
                        path.rename(kept)
                        # the whole records before the damage are still applied, read from where the file is kept
                        self._pending += [(q, kept, o, n) for q, _, o, n in found]
                        return last
                    break
                if seq > applied:
                    found.append((seq, path, offset + _HEAD.size, length))
                last = seq
                offset += _HEAD.size + length
        self._pending += found
        if last:
            self._files.append((int(path.stem), path))
            self._last_of[path] = last
        else:
            path.unlink()  # nothing whole in it
        return last

    def pending(self) -> Iterator[tuple[int, bytes]]:
        """The records found when the journal was opened that the store does not hold yet, oldest first."""
        for seq, path, offset, length in self._pending:
            with path.open("rb") as f:
                f.seek(offset)
                yield seq, f.read(length)

    # --- writing -------------------------------------------------------------------------------------------------

    def append(self, payload: bytes) -> int:
        """Write one record and sync it; returns its sequence number (durable on return)."""
        with self._lock:
            if self._out is None or self._out_size >= self.segment_bytes:
                self._open_next()
            assert self._out is not None and self._out_path is not None
            seq = self.next_seq
            self._out.write(_HEAD.pack(MAGIC, seq, len(payload), zlib.crc32(payload)) + payload)
            self._out.flush()
            if self.sync:
                os.fdatasync(self._out.fileno())
            self._out_size += _HEAD.size + len(payload)
            self._last_of[self._out_path] = seq
            self.next_seq = seq + 1
            return seq

    def _open_next(self) -> None:
        if self._out is not None:
            self._out.close()
        path = self.dir / _name(self.next_seq)
        self._out = path.open("ab")
        self._out_path, self._out_size = path, path.stat().st_size
        self._files.append((self.next_seq, path))
        if self.sync:
            fd = os.open(self.dir, os.O_RDONLY)
            try:
                os.fsync(fd)  # the new file's name is durable too
            finally:
                os.close(fd)

    def applied(self, seq: int) -> None:
        """The store holds every record up to ``seq``: delete the files it covers (the current one too, once
        wholly applied, and a new one starts with the next append)."""
        with self._lock:
            keep: list[tuple[int, Path]] = []
            for first, path in self._files:
                if self._last_of.get(path, 0) <= seq:
                    if path == self._out_path and self._out is not None:
                        self._out.close()
                        self._out, self._out_path, self._out_size = None, None, 0
                    path.unlink(missing_ok=True)
                    self._last_of.pop(path, None)
                else:
                    keep.append((first, path))
            self._files = keep

    def bytes_held(self) -> int:
        with self._lock:
            return sum(p.stat().st_size for _, p in self._files if p.exists())

    def close(self) -> None:
        with self._lock:
            if self._out is not None:
                self._out.close()
                self._out = None
                self._out_path = None
            if not self._owner.closed:
                self._owner.close()  # releases the lock


def _own(path: Path, wait_s: float) -> BinaryIO:
    """Hold the exclusive lock of ``path`` (another journal of the same network, in this process or another,
    holds it until it closes); StoreError after ``wait_s``."""
    f = path.open("ab")
    deadline = time.monotonic() + wait_s
    while True:  # wait_s 0: one try
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            return f
        except BlockingIOError:
            if time.monotonic() >= deadline:
                f.close()
                raise StoreError(f"the journal {path.parent} is in use by another writer of the same network") from None
            time.sleep(0.05)
