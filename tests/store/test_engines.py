"""Choosing the engine: ``open_store`` by the ``store_engine`` setting, and nothing above the store naming one."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bftscope.config import Settings
from bftscope.errors import InputError
from bftscope.store import ENGINES, open_store
from bftscope.store.duckdb import DuckDBStore

SRC = Path(__file__).resolve().parents[2] / "src" / "bftscope"


def test_the_default_engine_is_duckdb(tmp_path: Path) -> None:
    store = open_store(Settings(data_dir=tmp_path))
    try:
        assert isinstance(store, DuckDBStore)
        assert store.dialect.name == "duckdb"
    finally:
        store.close()


def test_the_engine_is_read_from_bftscope_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BFTSCOPE_STORE", "nosuchengine")
    settings = Settings(data_dir=tmp_path)
    assert settings.store_engine == "nosuchengine"
    with pytest.raises(InputError, match=r"unknown store engine 'nosuchengine'.*known: duckdb"):
        open_store(settings)
    assert not (tmp_path / "bftscope.duckdb").exists()
    assert set(ENGINES) == {"duckdb"}


def test_api_and_cli_name_no_engine_class() -> None:
    files = [SRC / "cli.py", *sorted((SRC / "api").rglob("*.py"))]
    engine_names = re.compile(r"\b(DuckDBStore|ThreadJobRunner|bftscope\.store\.duckdb)\b")
    named = [f"{p.relative_to(SRC)}: {m}" for p in files for m in engine_names.findall(p.read_text())]
    assert named == []
