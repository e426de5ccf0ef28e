"""What a followed run already holds, so that following it again (``bftscope watch`` run twice, a server restarted)
writes nothing twice and records the time it was not followed as an observation gap."""

from __future__ import annotations

from bftscope.families.cometbft import kinds
from bftscope.families.cometbft.live.seen import Seen
from bftscope.store.base import Store

__all__ = ["RESUME_HEIGHTS", "resume_state"]

RESUME_HEIGHTS = 1_000  # heights of a resumed run whose rows are loaded to keep them from being written again
_KEYED = (kinds.VOTE_ADDED, kinds.COMMIT_SIG, kinds.STEP, kinds.BLOCK_COMPLETE, kinds.BLOCK_COMMITTED,
          kinds.VALIDATOR_UPDATE)  # fmt: skip


def resume_state(store: Store, run_id: int) -> tuple[Seen, int | None, float | None]:
    """What a run already holds: the rows of its last heights (as written), its last committed height, and
    when it last saw anything (epoch s)."""
    seen = Seen()
    (top, last_ts), *_ = store.query(
        "SELECT max(height) FILTER (WHERE kind = :committed), max(ts) FROM events WHERE run_id = :run",
        {"run": run_id, "committed": kinds.BLOCK_COMMITTED},
    )
    if top is None:
        return seen, None, None
    cols = ("kind", "height", "round", "step", "vote_type", "validator", "validator_index", "extra")
    rows = store.query(
        f"SELECT {', '.join(cols)} FROM events WHERE run_id = :run AND height >= :floor AND kind IN "
        f"({', '.join(f':k{i}' for i in range(len(_KEYED)))})",
        {"run": run_id, "floor": int(top) - RESUME_HEIGHTS, **{f"k{i}": k for i, k in enumerate(_KEYED)}},
    )
    seen.preload(dict(zip(cols, r, strict=True)) for r in rows)
    return seen, int(top), int(last_ts) / 1e9
