"""Proposal part sets as a WAL shows them filling up: the moment a node held a whole proposal block.

A node's text or JSON log says "Received complete proposal block"; its consensus WAL never does.
The WAL does keep everything that moment is made of: the proposal (whose part-set header gives the
number of parts) and every block part the consensus state took in (a peer's, or the node's own
when it proposed). :class:`PartSets` follows those records of one WAL file in order and says at
which record the node first held every part index of a round's proposal, so the WAL parser can
emit the same ``block_complete`` event a log would.

Why a class of its own: the parser's per-record loop is the ingest hot path, so the state lives
in plain dicts keyed by ``(height, round)`` and each block-part record costs one dict lookup and
one set insertion. Parts that come before their round's proposal are kept (the total is not known
yet) and counted when the proposal arrives; duplicates and indexes beyond the total never count.
"""

from __future__ import annotations

import orjson

__all__ = ["PartSets", "proposal_total"]


def proposal_total(extra: str | None) -> int:
    """The part-set total in a proposal's ``extra`` (``parts_total``, see families/cometbft/parse/proto.py),
    0 when absent."""
    if not extra:
        return 0
    try:
        total = orjson.loads(extra).get("parts_total")
    except (orjson.JSONDecodeError, AttributeError):
        return 0
    return total if type(total) is int else 0


class PartSets:
    """The proposal blocks of one WAL file, per ``(height, round)``, as their parts come in.

    :meth:`part` and :meth:`proposal` return the block hash (``""`` when the proposal carried
    none) at the record that completes a block, and ``None`` otherwise; each ``(height, round)``
    completes at most once. After an EndHeight record, records of that height and lower complete
    nothing (peers keep sending stale proposals and parts, and the WAL keeps them): :meth:`end_height`
    forgets those rounds, which bounds the state to about one height whatever the length of the file.
    """

    __slots__ = ("_done", "_ended", "_held", "_proposals")

    def __init__(self) -> None:
        self._ended = -1  # the height of the last EndHeight record: the node has moved past it
        self._held: dict[tuple[int | None, int | None], set[int]] = {}  # part indexes seen
        self._proposals: dict[tuple[int | None, int | None], tuple[int, str]] = {}  # (total, block hash)
        self._done: set[tuple[int | None, int | None]] = set()

    def part(self, height: int | None, rnd: int | None, index: int) -> str | None:
        if height is not None and height <= self._ended:  # a stale part: the consensus state ignores it
            return None
        key = (height, rnd)
        held = self._held.get(key)
        if held is None:
            held = self._held[key] = set()
        if index in held:
            return None
        held.add(index)
        prop = self._proposals.get(key)
        if prop is None or index >= prop[0] or key in self._done:
            return None
        return self._check(key, held, prop)

    def proposal(self, height: int | None, rnd: int | None, extra: str | None, block_hash: str | None) -> str | None:
        """A proposal record; ``extra`` is the proposal's (its ``parts_total`` is read only when needed)."""
        if height is not None and height <= self._ended:
            return None
        key = (height, rnd)
        if key in self._proposals:  # the first proposal of a round is the one the node kept; peers resend it
            return None
        total = proposal_total(extra)
        if total <= 0:
            return None
        prop = self._proposals[key] = (total, block_hash or "")
        held = self._held.get(key)
        if held is None or key in self._done:
            return None
        return self._check(key, held, prop)

    def _check(self, key: tuple[int | None, int | None], held: set[int], prop: tuple[int, str]) -> str | None:
        total = prop[0]
        if len(held) < total:
            return None
        # Parts that came before the proposal may include indexes beyond its total: only the total's count.
        if sum(1 for i in held if 0 <= i < total) < total:
            return None
        self._done.add(key)
        return prop[1]

    def end_height(self, height: int | None) -> None:
        """The node finished ``height``: its consensus state ignores parts of that height and below from now on.

        The last EndHeight wins even when it is lower than an earlier one (two WALs concatenated, say):
        the heights after it are then new again.
        """
        if height is None:
            return
        self._ended = height
        for table in (self._held, self._proposals):
            if table:
                for key in [k for k in table if k[0] is not None and k[0] <= height]:
                    del table[key]
        if self._done:
            self._done = {k for k in self._done if k[0] is None or k[0] > height}
