"""The real v0.34 testnet's node0, ingested once into a temporary store and read back as live rows."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bftscope.config import Settings
from bftscope.families.cometbft.top.recorded import live_rows
from bftscope.families.cometbft.validators.validator import Validator
from bftscope.ingest.pipeline import ingest
from bftscope.store import DuckDBStore
from tests.conftest import require_data


@dataclass
class Recorded:
    store: DuckDBStore
    run_id: int
    node: int
    rows: list[dict[str, Any]]
    validators: list[Validator]
    names: dict[str, str]

    def sql(self, sql: str, **params: Any) -> list[tuple[Any, ...]]:
        return self.store.query(sql, {"run": self.run_id, "node": self.node, **params})


def genesis_validators(home: Path) -> tuple[list[Validator], dict[str, str]]:
    """The genesis set in CometBFT's set order (power descending, then address), with the genesis names."""
    doc = json.loads((home / "config" / "genesis.json").read_text())
    ordered = sorted(doc["validators"], key=lambda v: (-int(v["power"]), v["address"]))
    validators = [Validator(v["address"], int(v["power"]), None, i) for i, v in enumerate(ordered)]
    return validators, {v["address"]: v["name"] for v in ordered}


@pytest.fixture(scope="session")
def node0(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recorded]:
    testnet = require_data("cometbft/tendermint-v0.34-4node-wal")
    settings = Settings(data_dir=tmp_path_factory.mktemp("top-store"), query_timeout_s=30)
    store = DuckDBStore.open(settings.store_path, settings)
    ingest(store, "v034", [testnet / "node0"], settings)
    run_id = store.get_run("v034").id
    (node,) = [n.node for n in store.nodes(run_id) if n.label == "node0"]
    validators, names = genesis_validators(testnet / "node0")
    yield Recorded(store, run_id, node, list(live_rows(store, run_id, node)), validators, names)
    store.close()
