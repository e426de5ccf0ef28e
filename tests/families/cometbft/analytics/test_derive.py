"""Wire deliveries: the k-th send of some bytes over a link pairs with the k-th receive of the same bytes.

The rebuild numbers sends and receives only when some bytes cross a link more than once (otherwise
every k is 1); both ways must give what numbering every row gives.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from bftscope.config import Settings
from bftscope.families.cometbft.analytics.derive import rebuild
from bftscope.model import EventBatch
from bftscope.store import DuckDBStore

# The pairing as first written: every side numbered with a window, whatever its repeats.
_REFERENCE = """
WITH s AS (
    SELECT e.node AS sender, pn.node AS receiver, e.msg_key, e.ts, e.msg_type,
           row_number() OVER (PARTITION BY e.node, pn.node, e.msg_key ORDER BY e.ts, e.id) AS k
    FROM events e JOIN nodes pn ON pn.run_id = e.run_id AND pn.p2p_id = e.peer
    WHERE e.run_id = $run AND e.kind = 'p2p_send'
), r AS (
    SELECT pn.node AS sender, e.node AS receiver, e.msg_key, e.ts,
           row_number() OVER (PARTITION BY pn.node, e.node, e.msg_key ORDER BY e.ts, e.id) AS k
    FROM events e LEFT JOIN nodes pn ON pn.run_id = e.run_id AND pn.p2p_id = e.peer
    WHERE e.run_id = $run AND e.kind = 'p2p_recv'
)
SELECT s.sender, s.receiver, s.msg_type, s.ts, r.ts FROM s LEFT JOIN r USING (sender, receiver, msg_key, k)
ORDER BY ALL
"""


def _p2p(kind: str, ts: int, peer: str, key: int, seq: int) -> tuple[Any, ...]:
    return (ts, kind, 1, 0, None, "prevote", "vote", None, 0, None, peer, None, None, key, 10, seq, None)


def _ingest(store: DuckDBStore, rows_by_node: dict[str, list[tuple[Any, ...]]]) -> int:
    run = store.get_or_create_run("r", "cometbft")
    for i, (p2p_id, rows) in enumerate(rows_by_node.items()):
        node = store.resolve_node(run.id, p2p_id=p2p_id, validator=None, moniker=None, label=p2p_id)
        src = store.begin_source(run.id, node.node, f"{p2p_id}.log", "cometbft-json", f"h{i}", 1)
        store.append_events(run.id, node.node, src.id, EventBatch(rows).take())
        store.finish_source(src.id, lines=len(rows), events=len(rows), skipped={}, warnings=[])
    return run.id


@pytest.mark.parametrize("repeats", [False, True])
def test_wire_deliveries_pair_first_in_first_out(settings: Settings, repeats: bool) -> None:
    rng = random.Random(3)
    sends: list[tuple[Any, ...]] = []
    receives: list[tuple[Any, ...]] = []
    for i in range(300):
        key = rng.randrange(40) if repeats else i  # with repeats: the same bytes sent several times
        t = rng.randrange(1_000, 100_000)
        sends.append(_p2p("p2p_send", t, "bb", key, i))
        if rng.random() < 0.9:  # some never arrive
            receives.append(_p2p("p2p_recv", t + rng.randrange(1, 500), "aa", key, i))
    receives.append(_p2p("p2p_recv", 5, "outsider", 7, 999))  # from a peer outside the run
    store = DuckDBStore.open(":memory:", settings)
    run_id = _ingest(store, {"aa": sends, "bb": receives})
    derived = rebuild(store, run_id)
    got = store.query(
        "SELECT sender, receiver, msg_type, sent_ts, recv_ts FROM deliveries WHERE matched_by = 'wire' ORDER BY ALL"
    )
    want = store.query(_REFERENCE.replace("$run", str(run_id)))
    assert got == want and derived["deliveries"] == len(sends)
    assert sum(r[4] is None for r in got) >= 20
    unmatched = store.query("SELECT sender, count FROM unmatched_receipts ORDER BY ALL")
    assert (None, 1) in unmatched
    store.close()
