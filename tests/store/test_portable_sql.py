"""No DuckDB-only SQL outside the DuckDB engine package (issue 11).

Every string literal in ``src/bftscope`` outside ``store/duckdb/`` is searched for the DuckDB spellings
that other engines lack; each hit is listed with its file and line so the failure says what to move.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "bftscope"
ENGINE = SRC / "store" / "duckdb"

CONSTRUCTS = {
    "$name parameter": r"\$(?!ref\b)[a-z_]\w*",  # "$ref" is OpenAPI's, not a parameter
    "GROUP BY ALL": r"\bGROUP\s+BY\s+ALL\b",
    "list()": r"\blist\s*\(",
    "struct_pack": r"\bstruct_pack\b",
    "to_json": r"\bto_json\s*\(",
    "ASOF JOIN": r"\bASOF\b",
    "USING SAMPLE": r"\bUSING\s+SAMPLE\b",
    "EXCLUDE": r"\bEXCLUDE\s*\(",
    "CREATE OR REPLACE TEMP TABLE": r"\bCREATE\s+OR\s+REPLACE\s+TEMP",
    "make_timestamp": r"\bmake_timestamp\b",
    "arg_min/arg_max": r"\barg_m(?:in|ax)\s*\(",
    "any_value": r"\bany_value\s*\(",
    "quantile_cont": r"\bquantile_cont\b",
}


def _strings(tree: ast.AST) -> list[tuple[int, str]]:
    """Every string constant in the module (f-string parts included), with its line."""
    return [(node.lineno, node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str)]  # fmt: skip


def hits(root: Path = SRC) -> list[str]:
    found = []
    for path in sorted(root.rglob("*.py")):
        if path.is_relative_to(ENGINE):
            continue
        tree = ast.parse(path.read_text(), str(path))
        docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                      if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                      and n.body and isinstance(n.body[0], ast.Expr)}  # fmt: skip
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Constant) and isinstance(node.value, str)) or id(node) in docstrings:
                continue
            for name, pattern in CONSTRUCTS.items():
                if re.search(pattern, node.value, re.IGNORECASE if name != "$name parameter" else 0):
                    found.append(f"{path.relative_to(root)}:{node.lineno}: {name}")
    return found


def test_the_search_finds_each_construct(tmp_path: Path) -> None:
    # The check itself must see what it looks for, or a pass would mean nothing.
    lines = [f"Q{i} = {sql!r}" for i, sql in enumerate(
        ["SELECT $run", "SELECT a, count(*) FROM t GROUP BY ALL", "SELECT list(x)", "SELECT struct_pack(a := 1)",
         "SELECT to_json(x)", "FROM a ASOF JOIN b", "FROM t USING SAMPLE 10 ROWS", "SELECT * EXCLUDE (id)",
         "CREATE OR REPLACE TEMP TABLE x AS SELECT 1", "make_timestamp(1)", "arg_min(a, b)", "any_value(a)",
         "quantile_cont(x, 0.5)"])]  # fmt: skip
    (tmp_path / "m.py").write_text('"""A docstring may say GROUP BY ALL."""\n' + "\n".join(lines) + "\n")
    found = hits(tmp_path)
    assert [f.split(": ", 1)[1] for f in found] == list(CONSTRUCTS)
    assert all(not f.startswith("m.py:1:") for f in found)


def test_no_duckdb_only_sql_outside_the_duckdb_engine() -> None:
    found = hits()
    assert not found, "DuckDB-only SQL outside store/duckdb/:\n" + "\n".join(found)


def test_route_handlers_hold_no_sql() -> None:
    # Control-plane and event SQL live behind small functions (control/, store/eventquery.py); the API only
    # calls them. api/eventpage.py is the event page's renderer (one query), not a handler.
    sql = re.compile(r"\b(SELECT|INSERT\s+INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM)\b")
    found = []
    for path in sorted((SRC / "api").rglob("*.py")):
        if path.name == "eventpage.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and sql.search(node.value):
                found.append(f"{path.relative_to(SRC)}:{node.lineno}")
    assert not found, "SQL in the API layer:\n" + "\n".join(found)
