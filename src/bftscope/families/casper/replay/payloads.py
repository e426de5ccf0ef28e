"""What a replayed Casper node serves, read from files: an ``.sse`` transcript's frames, a ``.json`` file's one
event (as stored, pretty-printed or not), every such file of a folder."""

from __future__ import annotations

from pathlib import Path

from bftscope.errors import InputError
from bftscope.sources.sse import SSEParser

__all__ = ["read_payloads"]


def read_payloads(paths: list[Path]) -> list[bytes]:
    """The event payloads of ``paths`` (files in the order given, a folder's ``.sse``/``.json`` files by name)."""
    out: list[bytes] = []
    for path in paths:
        if path.is_dir():
            out += read_payloads(sorted(p for p in path.iterdir() if p.suffix in (".sse", ".json")))
        elif path.suffix == ".sse":
            parser = SSEParser()
            out += [f.data for f in parser.feed(path.read_bytes() + b"\n\n")]  # a transcript may end mid-event
        elif path.is_file():
            out.append(path.read_bytes().strip())
        else:
            raise InputError(f"{path}: no such file or folder")
    return out
