"""How DuckDB runs the statements callers write: ``:name`` parameters become DuckDB's ``$name``.

Callers outside the engine write named parameters as ``:name`` (the spelling most engines' drivers
accept) so that their SQL carries no DuckDB-only syntax; the store rewrites them just before running.
``::TYPE`` casts, ``:=`` and colons inside string literals are left alone.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

__all__ = ["bind"]

# A ':' that starts a name: not part of '::' (a cast) and not after a word character (a time '12:30').
_NAMED = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")
_LITERAL = re.compile(r"'(?:[^']|'')*'")


@lru_cache(maxsize=1024)
def _translate(sql: str) -> str:
    out, pos = [], 0
    for lit in _LITERAL.finditer(sql):  # rewrite outside string literals only
        out.append(_NAMED.sub(r"$\1", sql[pos : lit.start()]))
        out.append(lit.group(0))
        pos = lit.end()
    out.append(_NAMED.sub(r"$\1", sql[pos:]))
    return "".join(out)


def bind(sql: str, params: dict[str, Any] | list[Any] | None) -> str:
    """``sql`` as DuckDB should run it with ``params`` (named parameters translated when they are named)."""
    return _translate(sql) if isinstance(params, dict) else sql
