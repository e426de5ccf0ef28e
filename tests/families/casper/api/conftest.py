"""Fixtures for the Casper REST routes: the real app with users and a followed Casper network, filled through
``CasperStore`` with events decoded from the real payloads of ``shared/data/casper-sse`` and varied copies of
them (other hashes, heights, eras, proposers, accounts, times) for paging."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from bftscope.api.app import create_app
from bftscope.config import Settings
from bftscope.control import networks
from bftscope.families.casper.decoder import CasperDecoder
from bftscope.families.casper.model import CasperEvent
from bftscope.families.casper.store import CasperStore, WriteResult
from bftscope.sources.base import Frame
from bftscope.store.base import Store
from tests.api.conftest import make_user
from tests.conftest import require_data

NETWORK = "cspr"


def data_file(name: str) -> bytes:
    return (require_data("casper-sse") / name).read_bytes()


def inner_of(name: str) -> dict[str, Any]:
    """The value inside a fixture's type tag (or the whole file, for the sidecar's REST samples)."""
    value = json.loads(data_file(name))
    return next(iter(value.values())) if len(value) == 1 else value  # type: ignore[no-any-return]


def tagged(kind: str, inner: bytes) -> bytes:
    """An SSE data payload ``{"Kind": inner}`` with ``inner``'s bytes untouched."""
    return b'{"' + kind.encode() + b'":' + inner.strip() + b"}"


def decode(payloads: list[bytes], source: str = "n1:9999", first_id: int = 1) -> list[CasperEvent]:
    dec = CasperDecoder(source, "main")
    out: list[CasperEvent] = []
    for i, p in enumerate(payloads):
        out.extend(dec.feed(Frame(p, id=str(first_id + i))))
    assert not dec.report.skipped, dec.report.skipped
    return out


def hex64(*parts: object) -> str:
    return hashlib.sha256(" ".join(map(str, parts)).encode()).hexdigest()


def key66(n: int) -> str:
    return "01" + hex64("key", n)


def iso(ms: int) -> str:
    from datetime import UTC, datetime

    t = datetime.fromtimestamp(ms // 1000, UTC)
    return f"{t:%Y-%m-%dT%H:%M:%S}.{ms % 1000:03d}Z"


def block_copy(height: int, *, era: int, ts_ms: int, proposer: str, deploys: list[str] = (),  # type: ignore[assignment]
               transfers: list[str] = ()) -> bytes:  # type: ignore[assignment]  # fmt: skip
    """The real docs BlockAdded with another hash, height, era, time, proposer and deploys."""
    b = inner_of("casper-docs_node-events_BlockAdded.json")
    h = hex64("block", height)
    b["block_hash"] = b["block"]["hash"] = h
    hd = b["block"]["header"]
    hd.update(height=height, era_id=era, timestamp=iso(ts_ms), parent_hash=hex64("block", height - 1), era_end=None)
    b["block"]["body"].update(proposer=proposer, deploy_hashes=list(deploys), transfer_hashes=list(transfers))
    return tagged("BlockAdded", json.dumps(b, separators=(",", ":")).encode())


def processed_copy(deploy_hash: str, account: str, block_hash: str, *, ts_ms: int, cost: int = 100,
                   failed: bool = False) -> bytes:  # fmt: skip
    """The sidecar's real DeployProcessed sample with another deploy, account, block, time and outcome."""
    d = inner_of("sidecar_USAGE_rest_07_deploy_processed.json")
    d.update(deploy_hash=deploy_hash, account=account, block_hash=block_hash, timestamp=iso(ts_ms))
    result = next(iter(d["execution_result"].values()))
    result["cost"] = str(cost)
    if failed:
        result["error_message"] = "User error: 1"
    d["execution_result"] = {"Failure" if failed else "Success": result}
    return tagged("DeployProcessed", json.dumps(d, separators=(",", ":")).encode())


def accepted_copy(deploy_hash: str, account: str, *, ts_ms: int) -> bytes:
    d = inner_of("sidecar_USAGE_rest_06_deploy_accepted.json")
    d["hash"] = deploy_hash
    d["header"].update(account=account, timestamp=iso(ts_ms))
    return tagged("DeployAccepted", json.dumps(d, separators=(",", ":")).encode())


def expired_copy(deploy_hash: str) -> bytes:
    return tagged("DeployExpired", json.dumps({"deploy_hash": deploy_hash}).encode())


SCHEMA_PAYLOADS = ("sidecar_legacy_fixtures/raw_legacy_block_added.json",
                   "sidecar_legacy_fixtures/raw_legacy_deploy_accepted.json",
                   "sidecar_legacy_fixtures/raw_legacy_deploy_processed.json", "casper-docs_node-events_Fault.json",
                   "casper-docs_node-events_FinalitySignature.json", "casper-docs_node-events_Step.json")  # fmt: skip


def fill_network(store: Store, user_id: str, name: str = NETWORK) -> dict[str, str]:
    """A followed Casper network holding real payloads, and path parameters of the Casper routes that find
    them (for the OpenAPI walk in tests/api/test_schema.py)."""
    networks.create_network(store, user_id, name, "casper", ["http://127.0.0.1:9/"], {}, max_endpoints=8,
                            max_per_user=20)  # fmt: skip
    run = store.get_or_create_run(networks.run_name(name), "casper")
    CasperStore(store, run.id).write(decode([data_file(n) for n in SCHEMA_PAYLOADS]))
    block = inner_of(SCHEMA_PAYLOADS[0])
    processed = inner_of(SCHEMA_PAYLOADS[2])
    return {"network": name, "blockHash": block["block_hash"], "hashOrHeight": str(block["block"]["header"]["height"]),
            "deployHash": processed["deploy_hash"], "account": processed["account"],
            "publicKeyOrEra": inner_of(SCHEMA_PAYLOADS[3])["public_key"],
            "era": str(inner_of(SCHEMA_PAYLOADS[5])["era_id"])}  # fmt: skip


@dataclass
class CasperApi:
    client: TestClient
    store: Store
    admin: dict[str, str]
    owner: dict[str, str]
    other: dict[str, str]
    run_id: int
    _next_id: int = 1

    def url(self, path: str) -> str:
        return f"/v1/casper/{NETWORK}{path}"

    def get(self, path: str, **params: Any) -> Any:
        return self.client.get(self.url(path), params=params or None, headers=self.owner)

    def write(self, payloads: list[bytes], source: str = "n1:9999") -> WriteResult:
        events = decode(payloads, source, self._next_id)
        self._next_id += len(payloads)
        return CasperStore(self.store, self.run_id).write(events)


def casper_settings(tmp_path: Path, **extra: Any) -> Settings:
    return Settings(data_dir=tmp_path / "data", rate_limit_enabled=False, follow_networks=False, **extra)


def open_api(client: TestClient) -> CasperApi:
    store: Store = client.app.state.ctx.store  # type: ignore[attr-defined]
    admin = make_user(client, "root1")
    owner = make_user(client, "alice", admin["token"])
    other = make_user(client, "bob", admin["token"])
    networks.create_network(store, owner["id"], NETWORK, "casper", ["http://127.0.0.1:9/"], {}, max_endpoints=8,
                            max_per_user=20)  # fmt: skip
    run = store.get_or_create_run(networks.run_name(NETWORK), "casper")
    return CasperApi(client, store, admin["h"], owner["h"], other["h"], run.id)


@pytest.fixture
def casper_api(tmp_path: Path) -> Iterator[CasperApi]:
    with TestClient(create_app(casper_settings(tmp_path))) as client:
        yield open_api(client)
