"""Which node versions a follower takes: the ``ApiVersion`` of every connection's first event.

A 1.x node (ApiVersion ≥ 1.0.0, < 2.0.0) sends the event shapes the decoder knows. A 2.x node sends the 2.0
shapes (``TransactionAccepted``, versioned ``BlockAdded``/``FinalitySignature``): the casper-sidecar's "legacy
SSE emulation" turns those back into 1.x shapes inside the sidecar, not on the node's wire, so a 2.x node's
stream cannot be decoded here and the node is marked incompatible (−2, not retried). A version that does not
parse is incompatible too.
"""

from __future__ import annotations

import re

__all__ = ["incompatibility", "parse_version"]

_SEMVER = re.compile(r"(\d{1,9})\.(\d{1,9})\.(\d{1,9})(?:[-+][0-9A-Za-z.+-]*)?")


def parse_version(text: str) -> tuple[int, int, int] | None:
    m = _SEMVER.fullmatch(text.strip())
    return (int(m[1]), int(m[2]), int(m[3])) if m else None


def incompatibility(version: str) -> str | None:
    """Why a node of this ApiVersion cannot be followed; None when it can."""
    v = parse_version(version)
    if v is None:
        return f"ApiVersion {version[:40]!r} is not a version"
    if v < (1, 0, 0):
        return f"ApiVersion {version} is older than 1.0.0"
    if v[0] >= 2:
        return f"ApiVersion {version}: a 2.x node sends the 2.0 event shapes, which this follower does not decode"
    return None
