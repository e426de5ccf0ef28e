"""Shared fixtures. Real recorded data is read from ``../shared/data`` (override with
``BFTSCOPE_TEST_DATA``); it is never copied into the repository. Where it is absent the tests that
need it skip with a message, except under CI (``CI=true``), where they fail instead.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bftscope.config import Settings

REPO = Path(__file__).resolve().parent.parent


def shared_data_dir() -> Path:
    env = os.environ.get("BFTSCOPE_TEST_DATA")
    return Path(env) if env else (REPO.parent / "shared" / "data")


def require_data(relative: str) -> Path:
    """Path of a real-data file or folder; skip (or fail under CI) when it is absent."""
    path = shared_data_dir() / relative
    if not path.exists():
        message = f"real data not found at {path} (set BFTSCOPE_TEST_DATA to the shared data folder)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture
def wal_testnet() -> Path:
    """The real 4-validator Tendermint v0.34 testnet (WALs, text logs, configs)."""
    return require_data("cometbft/tendermint-v0.34-4node-wal")


@pytest.fixture
def json_debug_lines() -> Path:
    """28 real CometBFT 1.x JSON debug log lines."""
    return require_data("cometbft/cometbft-1.x-json-debug-lines.jsonl")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", query_timeout_s=30)
