"""Opaque keyset cursors for the Casper lists: where the last page ended, not how many rows came before.

A page continues strictly after its cursor's sort key, so rows inserted while a client walks a list never
shift what it sees (an offset would skip or repeat rows), and a deep page costs what the first does (no
``OFFSET``). The keys are the lists' total orders:

* blocks: ``height`` descending (a height holds one block: the store refuses a second hash at a height);
* an account's deploys: the height of the block that processed them descending, deploys not yet in a known
  block last, then ``deploy_hash`` ascending.

A cursor is the key as text, base64url-encoded without padding, behind a kind letter; a client must not
build one. A malformed cursor, or one of another list, is refused (400).
"""

from __future__ import annotations

import base64
import binascii
import re

from bftscope.families.casper.api.params import INT64_MAX, ParamError

__all__ = ["BlockKey", "DeployKey", "decode_block", "decode_deploy", "encode_block", "encode_deploy"]

BlockKey = int  # the height of the last block sent
DeployKey = tuple[int | None, str]  # (height of its block, or None; deploy hash) of the last deploy sent

_BLOCK = re.compile(r"b([0-9]{1,19})")
_DEPLOY = re.compile(r"d([0-9]{0,19}):([^\x00-\x1f]{1,256})")
_BAD = "cursor is not one this list returned (send the next_cursor of the previous page)"


def _encode(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode("utf-8")).rstrip(b"=").decode("ascii")


def _decode(cursor: str) -> str:
    if len(cursor) > 400 or not cursor.isascii():
        raise ParamError(_BAD)
    try:
        return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("utf-8")
    except (binascii.Error, ValueError):
        raise ParamError(_BAD) from None


def encode_block(key: BlockKey) -> str:
    return _encode(f"b{key}")


def decode_block(cursor: str) -> BlockKey:
    m = _BLOCK.fullmatch(_decode(cursor))
    if m is None or int(m.group(1)) > INT64_MAX:
        raise ParamError(_BAD)
    return int(m.group(1))


def encode_deploy(key: DeployKey) -> str:
    height, deploy_hash = key
    return _encode(f"d{'' if height is None else height}:{deploy_hash}")


def decode_deploy(cursor: str) -> DeployKey:
    m = _DEPLOY.fullmatch(_decode(cursor))
    if m is None or (m.group(1) and int(m.group(1)) > INT64_MAX):
        raise ParamError(_BAD)
    return (int(m.group(1)) if m.group(1) else None), m.group(2)
