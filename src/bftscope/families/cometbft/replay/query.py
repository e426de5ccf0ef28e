"""Subscription queries as the replay node understands them: ``tm.event = '<Kind>'``.

CometBFT's query language has conditions ``tag op value`` joined by ``AND``. The replay tokenises a query the
same way, so a malformed one fails with CometBFT's error text (``failed to parse query: offset N: got tag,
wanted … operator``), and accepts exactly one condition on ``tm.event`` with ``=``; anything else that parses
(``AND``, other tags) is refused with a clear message rather than half served. Any event name is accepted, as
by a real node; only the kinds in :data:`SERVED` ever produce events.
"""

from __future__ import annotations

import re

__all__ = ["MAX_QUERY_BYTES", "SERVED", "QueryError", "event_kind"]

MAX_QUERY_BYTES = 512  # CometBFT's max query length
SERVED = ("NewRound", "NewRoundStep", "Vote", "NewBlock", "CompleteProposal", "ValidatorSetUpdates")
_OPS = "<= operator, >= operator, < operator, > operator, = operator, CONTAINS operator or EXISTS operator"
_TOKEN = re.compile(
    r"\s*(?:(?P<string>'[^']*')|(?P<op><=|>=|<|>|=)|(?P<word>[A-Za-z_][\w.\-]*)|(?P<number>-?\d+(?:\.\d+)?))"
)


class QueryError(ValueError):
    pass


def _tokens(query: str) -> list[tuple[str, str, int]]:
    out: list[tuple[str, str, int]] = []
    pos = 0
    while pos < len(query):
        if query[pos:].strip() == "":
            break
        m = _TOKEN.match(query, pos)
        if m is None or m.lastgroup is None:
            start = len(query[:pos]) + (len(query[pos:]) - len(query[pos:].lstrip()))
            raise QueryError(f"failed to parse query: offset {start}: unexpected {query[start]!r}")
        kind, text = m.lastgroup, m.group(m.lastgroup)
        start = m.start(kind)
        if kind == "word" and text.upper() in ("AND", "CONTAINS", "EXISTS"):
            kind = text.lower() if text.upper() == "AND" else "op"
        elif kind == "word":
            kind = "tag"
        out.append((kind, text, start))
        pos = m.end()
    return out


def event_kind(query: str) -> str:
    """The ``tm.event`` value the query selects, or :class:`QueryError` with the reason."""
    if len(query.encode()) > MAX_QUERY_BYTES:
        raise QueryError(f"query is too long (max {MAX_QUERY_BYTES} bytes)")
    toks = _tokens(query)
    if not toks:
        raise QueryError("failed to parse query: offset 0: empty query")
    conditions: list[tuple[str, str, str]] = []
    i = 0
    while True:
        if i >= len(toks) or toks[i][0] != "tag":
            where = toks[i][2] if i < len(toks) else len(query)
            got = toks[i][0] if i < len(toks) else "end of query"
            raise QueryError(f"failed to parse query: offset {where}: got {got}, wanted tag")
        tag = toks[i][1]
        if i + 1 >= len(toks) or toks[i + 1][0] != "op":
            where = toks[i + 1][2] if i + 1 < len(toks) else len(query)
            got = toks[i + 1][0] if i + 1 < len(toks) else "end of query"
            raise QueryError(f"failed to parse query: offset {where}: got {got}, wanted {_OPS}")
        op = toks[i + 1][1].upper()
        i += 2
        value = ""
        if op != "EXISTS":
            if i >= len(toks) or toks[i][0] not in ("string", "number"):
                where = toks[i][2] if i < len(toks) else len(query)
                raise QueryError(f"failed to parse query: offset {where}: wanted a string or number")
            value = toks[i][1]
            i += 1
        conditions.append((tag, op, value))
        if i >= len(toks):
            break
        if toks[i][0] != "and":
            raise QueryError(f"failed to parse query: offset {toks[i][2]}: got {toks[i][0]}, wanted AND")
        i += 1
    tag, op, value = conditions[0]
    if len(conditions) > 1 or tag != "tm.event" or op != "=" or not value.startswith("'"):
        raise QueryError(
            "the replay node serves only queries of the form tm.event = '<Kind>' (one condition, no AND); "
            f"kinds with events: {', '.join(SERVED)}"
        )
    return value[1:-1]
