"""Casper event streams built from the real node payloads in ``casper-sse/`` with known timings.

Each builder takes a real payload (a BlockAdded, an era-end BlockAdded with its validator weights, a
FinalitySignature, DeployAccepted/Processed/Expired, a Fault), changes only the fields a scenario sets
(hashes, heights, eras, proposers, timestamps) and decodes it with :class:`CasperDecoder` at a chosen
``received_ns`` — so the store gets exactly what a node would send, at times the test knows.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bftscope.families.casper.decoder import CasperDecoder
from bftscope.families.casper.model import CasperEvent
from bftscope.sources.base import Frame
from tests.conftest import require_data

__all__ = ["Payloads", "StreamBuilder", "iso_ms"]

_FILES = {
    "block": "casper-docs_node-events_BlockAdded.json",
    "era_end": "sidecar_legacy_fixtures/raw_legacy_block_added.json",
    "signature": "casper-docs_node-events_FinalitySignature.json",
    "accepted": "sidecar_legacy_fixtures/raw_legacy_deploy_accepted.json",
    "processed": "sidecar_legacy_fixtures/raw_legacy_deploy_processed.json",
    "expired": "casper-docs_node-events_DeployExpired.json",
    "fault": "casper-docs_node-events_Fault.json",
}


def iso_ms(ms: int) -> str:
    """Epoch milliseconds → the RFC 3339 spelling a node sends (``2023-01-01T09:55:25.312Z``)."""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


@dataclass
class Payloads:
    """The real payloads, parsed once."""

    docs: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls) -> Payloads:
        root = require_data("casper-sse")
        return cls({k: json.loads(Path(root, name).read_bytes()) for k, name in _FILES.items()})

    def raw(self, kind: str) -> bytes:
        return Path(require_data("casper-sse"), _FILES[kind]).read_bytes()


class StreamBuilder:
    """Events of several nodes at known receipt times; each node has its own event ids."""

    def __init__(self, payloads: Payloads) -> None:
        self.p = payloads
        self._ids: dict[str, int] = {}

    def _event(self, source: str, channel: str, doc: Any, received_ns: int) -> CasperEvent:
        dec = CasperDecoder(source, channel, clock=lambda: received_ns)
        n = self._ids[source] = self._ids.get(source, 0) + 1
        out = list(dec.feed(Frame(json.dumps(doc).encode(), id=str(n))))
        assert not dec.report.skipped, dec.report
        return out[0]

    def block(self, source: str, received_ns: int, *, block_hash: str, height: int, era: int, ts_ms: int,
              proposer: str, weights: dict[str, int] | None = None, equivocators: list[str] | None = None,
              deploys: list[str] | None = None) -> CasperEvent:  # fmt: skip
        """A BlockAdded; with ``weights`` an era-end block setting the next era's validator weights."""
        doc = copy.deepcopy(self.p.docs["era_end" if weights is not None else "block"])
        b = doc["BlockAdded"]
        b["block_hash"] = b["block"]["hash"] = block_hash
        header = b["block"]["header"]
        header.update(height=height, era_id=era, timestamp=iso_ms(ts_ms))
        if weights is not None:
            header["era_end"]["next_era_validator_weights"] = [{"validator": v, "weight": str(w)}
                                                               for v, w in weights.items()]  # fmt: skip
            header["era_end"]["era_report"]["equivocators"] = list(equivocators or [])
        b["block"]["body"].update(proposer=proposer, deploy_hashes=list(deploys or []), transfer_hashes=[])
        return self._event(source, "main", doc, received_ns)

    def signature(self, source: str, received_ns: int, *, block_hash: str, era: int, validator: str) -> CasperEvent:
        doc = copy.deepcopy(self.p.docs["signature"])
        doc["FinalitySignature"].update(block_hash=block_hash, era_id=era, public_key=validator)
        return self._event(source, "sigs", doc, received_ns)

    def accepted(self, source: str, received_ns: int, *, deploy_hash: str, account: str, ts_ms: int) -> CasperEvent:
        doc = copy.deepcopy(self.p.docs["accepted"])
        doc["DeployAccepted"]["hash"] = deploy_hash
        doc["DeployAccepted"]["header"].update(account=account, timestamp=iso_ms(ts_ms))
        return self._event(source, "deploys", doc, received_ns)

    def processed(self, source: str, received_ns: int, *, deploy_hash: str, account: str, block_hash: str,
                  ts_ms: int, success: bool = True, error: str = "out of gas") -> CasperEvent:  # fmt: skip
        doc = copy.deepcopy(self.p.docs["processed"])
        body = doc["DeployProcessed"]
        body.update(deploy_hash=deploy_hash, account=account, block_hash=block_hash, timestamp=iso_ms(ts_ms))
        (result,) = body["execution_result"].values()
        result = dict(result)
        if success:
            result.pop("error_message", None)
            body["execution_result"] = {"Success": result}
        else:
            result["error_message"] = error
            body["execution_result"] = {"Failure": result}
        return self._event(source, "main", doc, received_ns)

    def expired(self, source: str, received_ns: int, *, deploy_hash: str) -> CasperEvent:
        doc = copy.deepcopy(self.p.docs["expired"])
        doc["DeployExpired"]["deploy_hash"] = deploy_hash
        return self._event(source, "main", doc, received_ns)

    def fault(self, source: str, received_ns: int, *, era: int, validator: str, ts_ms: int) -> CasperEvent:
        doc = copy.deepcopy(self.p.docs["fault"])
        doc["Fault"].update(era_id=era, public_key=validator, timestamp=iso_ms(ts_ms))
        return self._event(source, "main", doc, received_ns)
