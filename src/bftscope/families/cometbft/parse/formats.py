"""The CometBFT file formats, in the order they are tried when sniffing a file's content."""

from __future__ import annotations

from bftscope.families.cometbft.parse.amino import AminoWalFormat
from bftscope.families.cometbft.parse.jsonlog import JsonLogFormat
from bftscope.families.cometbft.parse.textlog import TextLogFormat
from bftscope.families.cometbft.parse.wal import WalFormat
from bftscope.ingest.source import FileFormat

__all__ = ["FORMATS", "format_by_name"]

# The binary formats first: their check (a CRC over the first record) never accepts text. The amino WAL
# of Tendermint ≤ 0.33 is recognised only to say it is not supported.
FORMATS: tuple[FileFormat, ...] = (WalFormat(), AminoWalFormat(), JsonLogFormat(), TextLogFormat())
_BY_NAME = {f.name: f for f in FORMATS}


def format_by_name(name: str) -> FileFormat:
    return _BY_NAME[name]
