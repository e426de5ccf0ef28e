"""The layout rules of docs/architecture.md that a reviewer would otherwise check by hand: no module over
500 lines (split along a seam before it grows past), and no chain-neutral layer naming a chain family (only
the registry does, so a new family is a new package and one line there)."""

from __future__ import annotations

import re
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "bftscope"
MAX_LINES = 500
# The layers every family plugs into; none may import or name one.
NEUTRAL = ("ingest", "store", "api", "control", "sources", "analytics", "live", "cli.py", "model.py", "config.py",
           "errors.py", "timeutil.py")  # fmt: skip
# A family's package (the registry and the ChainFamily protocol are the seam itself, not a family).
FAMILY = re.compile(r"bftscope\.families\.(?!registry\b|base\b)\w+|bftscope\.cometbft\b")


def long_modules(root: Path, limit: int = MAX_LINES) -> dict[str, int]:
    """Every module under ``root`` longer than ``limit`` lines, with its length."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        n = len(path.read_text(encoding="utf-8").splitlines())
        if n > limit:
            out[str(path.relative_to(root))] = n
    return out


def family_mentions(root: Path) -> list[str]:
    """``file:line`` of every chain-neutral module line that names a family package."""
    hits = []
    for entry in NEUTRAL:
        base = root / entry
        for path in sorted([base] if base.is_file() else base.rglob("*.py")):
            for no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if FAMILY.search(line):
                    hits.append(f"{path.relative_to(root)}:{no}")
    return hits


def test_no_module_over_500_lines() -> None:
    assert long_modules(SRC) == {}


def test_long_modules_finds_a_long_one(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "big.py").write_text("x = 1\n" * (MAX_LINES + 1))
    (tmp_path / "small.py").write_text("x = 1\n" * MAX_LINES)
    assert long_modules(tmp_path) == {"pkg/big.py": MAX_LINES + 1}


def test_only_the_registry_names_a_family() -> None:
    assert not (SRC / "cometbft").exists()
    assert family_mentions(SRC) == []
    assert "bftscope.families.cometbft" in (SRC / "families" / "registry.py").read_text(encoding="utf-8")


def test_family_mentions_finds_an_import(tmp_path: Path) -> None:
    (tmp_path / "ingest").mkdir()
    (tmp_path / "ingest" / "a.py").write_text("from bftscope.families.registry import families\n"
                                             "from bftscope.families.base import ChainFamily\n"
                                             "from bftscope.families.casper.parse import sse\n")
    assert family_mentions(tmp_path) == ["ingest/a.py:3"]
