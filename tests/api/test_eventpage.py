"""The events page rendered by DuckDB equals the readable Python definition (``event_json``), event for event,
on a simulated JSON-log run (every log kind) and on the real WAL testnet; bounded-window paging returns
exactly the plain keyset pages, whatever the filters; the confirmed exchanges are interleaved with the fields
the original frontend's trace reads, and WAL events carry the log names."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from bftscope.config import Settings
from bftscope.families.cometbft.eventpage import (
    DELIVERY_ID,
    event_json,
    fetch_page,
    list_entries,
    lookup_tables,
    lookups,
)
from bftscope.families.cometbft.synthetic.network import build_config, simulate
from bftscope.ingest.pipeline import ingest
from bftscope.store import DuckDBStore
from bftscope.store.eventquery import EventFilter
from bftscope.timeutil import parse_rfc3339_ns
from tests.conftest import require_data
from tests.families.cometbft.analytics import reference


def _strip(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _strip(v) for k, v in x.items() if v is not None}
    return x


def _ingest(root: Path, source: Path) -> tuple[DuckDBStore, int]:
    settings = Settings(data_dir=root / "store")
    store = DuckDBStore.open(settings.store_path, settings)
    ingest(store, "r", [source], settings)
    return store, store.get_run("r").id


@pytest.fixture(scope="module")
def sim_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[DuckDBStore, int]:
    root = tmp_path_factory.mktemp("sim")
    simulate(build_config(nodes=4, heights=6, seed=3, escalations=[3]), root / "net")
    return _ingest(root, root / "net")


@pytest.fixture(scope="module")
def wal_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[DuckDBStore, int]:
    return _ingest(tmp_path_factory.mktemp("wal"), require_data("cometbft/tendermint-v0.34-4node-wal"))


@pytest.fixture(params=["sim_run", "wal_run"])
def run(request: pytest.FixtureRequest) -> tuple[DuckDBStore, int]:
    return request.getfixturevalue(request.param)  # type: ignore[no-any-return]


def _span(store: DuckDBStore, rid: int) -> tuple[int, int, int]:
    n, lo, hi = store.query("SELECT count(*), min(ts), max(ts) FROM events WHERE run_id = ?", [rid])[0]
    return int(n), int(lo), int(hi)


def test_sql_rendering_equals_python_definition(run: tuple[DuckDBStore, int]) -> None:
    store, rid = run
    lk = lookups(store, rid)
    want = [event_json(e, lk) for e in list_entries(store, rid, EventFilter())]
    got = [orjson.loads(r[2]) for r in fetch_page(store, rid, EventFilter(), limit=10**7, after=None, before=None,
                                                  offset=0, span=_span(store, rid))]  # fmt: skip
    assert len(got) == len(want) > 1000
    kinds = set()
    for g, w in zip(got, want, strict=True):
        assert _strip(g) == _strip(w), (g, w)
        kinds.add(w["eventType"])
    assert {"enteringNewHeight", "enteringPrecommitStep", "receiveVote"} & kinds


@pytest.mark.parametrize("flt", [EventFilter(), EventFilter(kinds=["step"]), EventFilter(nodes=[1], min_height=3)])
def test_bounded_pages_equal_keyset_pages(run: tuple[DuckDBStore, int], flt: EventFilter) -> None:
    store, rid = run
    span = _span(store, rid)
    everything = [(e["ts"], e["id"]) for e in list_entries(store, rid, flt)]
    seen: list[tuple[int, int]] = []
    after = None
    while True:
        page = fetch_page(store, rid, flt, limit=97, after=after, before=None, offset=0, span=span)
        seen += [(r[0], r[1]) for r in page]
        if len(page) < 97:
            break
        after = (page[-1][0], page[-1][1])
    assert seen == everything
    mid = everything[len(everything) // 2]
    back = fetch_page(store, rid, flt, limit=50, after=None, before=mid, offset=0, span=span)
    i = everything.index(mid)
    assert [(r[0], r[1]) for r in back] == everything[max(0, i - 50):i]
    seg = fetch_page(store, rid, flt, limit=40, after=None, before=None, offset=80, span=span)
    assert [(r[0], r[1]) for r in seg] == everything[80:120]


def _entries(store: DuckDBStore, rid: int, flt: EventFilter | None = None) -> list[dict[str, Any]]:
    rows = fetch_page(store, rid, flt or EventFilter(), limit=10**7, after=None, before=None, offset=0,
                      span=_span(store, rid))  # fmt: skip
    return [orjson.loads(r[2]) for r in rows]


def _vote_key(e: dict[str, Any]) -> tuple[Any, ...]:
    v = e["vote"]
    return v["height"], v["round"], v["type"], v["validatorIndex"]


def _ns(text: str) -> int:
    return parse_rfc3339_ns(text)


def test_confirmed_exchanges_are_interleaved_with_the_message_fields(run: tuple[DuckDBStore, int]) -> None:
    store, rid = run
    entries = _entries(store, rid)
    assert [(_ns(e["timestamp"]), e["id"]) for e in entries] == sorted((_ns(e["timestamp"]), e["id"]) for e in entries)
    wal = store.query("SELECT count(*) FROM sources WHERE run_id = ? AND format = 'cometbft-wal'", [rid])[0][0] > 0
    exchanges = [e for e in entries if e["kind"] == "delivery"]
    received = store.query("SELECT count(*) FROM deliveries WHERE run_id = ? AND recv_ts IS NOT NULL", [rid])[0][0]
    assert len(exchanges) == received > 100  # every received delivery once, and nothing else
    assert {e["eventType"] for e in exchanges} >= {"p2pVote", "p2pBlockPart", "p2pProposal"} | (
        set() if wal else {"p2pNewRoundStep", "p2pHasVote"})
    by_key: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for e in entries:
        if e.get("vote") and e["kind"] != "delivery":
            by_key.setdefault((e["eventType"], e["nodeId"], *_vote_key(e)), []).append(e)
    votes = [e for e in exchanges if e["eventType"] == "p2pVote"]
    assert votes
    for x in exchanges:
        assert x["status"] == "confirmed" and x["recipientPeerId"] == x["nodeId"] != x["senderPeerId"]
        assert x["receivedTime"] == x["timestamp"] and x["latency"] == _ns(x["receivedTime"]) - _ns(x["sentTime"])
    for x in votes:
        block = x["vote"]["blockId"]["hash"]
        assert x["vote"]["validatorAddress"]
        # the receive on the receiver (the reactor's Receive in a log prints only fingerprints: completed)
        got = [r for r in by_key[("receiveVote", x["nodeId"], *_vote_key(x))] if r["sourcePeerId"] == x["senderPeerId"]]
        assert got and all(r["vote"]["blockId"]["hash"] == block for r in got)
        assert all(r["vote"]["validatorAddress"] == x["vote"]["validatorAddress"] for r in got)
        if not wal:  # and the send on the sender, at the sent time, to this receiver
            sent = [s for s in by_key[("sendVote", x["senderPeerId"], *_vote_key(x))]
                    if s["recipientPeerId"] == x["nodeId"] and s["timestamp"] == x["sentTime"]]  # fmt: skip
            assert len(sent) == 1 and sent[0]["vote"]["blockId"]["hash"] == block
    non_nil = [x for x in votes if x["vote"]["blockId"]["hash"]]
    assert non_nil and all(x["vote"]["blockId"]["partSetHeader"]["total"] >= 1 for x in non_nil)
    # a vote's signer is known wherever its index is (not "" as the original's receiveVote)
    indexed = [e for e in entries if e.get("vote") and e["vote"]["validatorIndex"] is not None]
    assert indexed and all(e["vote"]["validatorAddress"] for e in indexed)
    parts = [e for e in entries if e.get("part")]
    assert parts and all(p["part"]["proof"]["index"] == p["part"]["index"] and p["part"]["proof"]["total"] >= 1
                         for p in parts)  # fmt: skip
    only = _entries(store, rid, EventFilter(kinds=["delivery"]))
    assert [e["id"] for e in only] == [e["id"] for e in exchanges]
    assert not any(e["kind"] == "delivery" for e in _entries(store, rid, EventFilter(kinds=["step"])))


def test_wal_events_take_the_names_of_the_same_observation_in_a_log(wal_run: tuple[DuckDBStore, int]) -> None:
    store, rid = wal_run
    entries = _entries(store, rid)
    types = {e["eventType"] for e in entries}
    assert {"proposeStep", "receivedProposal", "enteringNewHeight", "enteringPrevoteStep"} <= types
    assert not {"enteringProposeStep", "receiveProposal"} & types
    turns = [e for e in entries if e["eventType"] == "proposeStep"]
    steps = store.query("SELECT count(*) FROM events WHERE run_id = ? AND kind = 'step' AND step = 'propose'", [rid])
    assert len(turns) == steps[0][0]
    ours = [e for e in turns if e["isOurTurn"]]
    # the node whose WAL holds its own proposal of that height and round: one per round proposed
    own = store.query("SELECT count(DISTINCT (node, height, round)) FROM events WHERE run_id = ?"
                      " AND kind = 'msg_internal' AND msg_type = 'proposal'", [rid])[0][0]  # fmt: skip
    assert len({(e["node"], e["height"], e["round"]) for e in ours}) == own > 70
    assert all(e["proposer"] == e["validatorAddress"] for e in ours)
    proposers = {(e["height"], e["round"]): e["proposer"] for e in ours}
    assert all(e["proposer"] == proposers[(e["height"], e["round"])] for e in turns
               if (e["height"], e["round"]) in proposers)  # fmt: skip
    got = [e for e in entries if e["eventType"] == "receivedProposal"]
    assert got and all(e["proposal"]["blockId"]["hash"] and e["proposer"] for e in got)


def test_part_set_hashes_are_filled_where_the_data_has_them(run: tuple[DuckDBStore, int]) -> None:
    """Proposals decoded from bytes (a WAL; the p2p packets of a debug log) carry the full part-set hash: every
    proposal of that block and the votes for it show it. A log line prints only its first 6 bytes
    (``hash:total:FINGERPRINT``), kept as ``parts_hash_fp`` — and they are the hash's."""
    store, rid = run
    entries = _entries(store, rid)
    proposals = [e for e in entries if e.get("proposal") and e["proposal"]["blockId"]["hash"]]
    votes = [e for e in entries if e.get("vote") and e["vote"]["blockId"]["hash"]]
    assert proposals and votes
    by_block = {e["proposal"]["blockId"]["hash"]: e["proposal"]["blockId"]["partSetHeader"] for e in proposals}
    assert all(len(e["proposal"]["blockId"]["partSetHeader"]["hash"]) == 64 for e in proposals)
    assert all(e["proposal"]["blockId"]["partSetHeader"] == by_block[e["proposal"]["blockId"]["hash"]]
               for e in proposals)  # fmt: skip
    assert all(e["vote"]["blockId"]["partSetHeader"] == by_block[e["vote"]["blockId"]["hash"]] for e in votes
               if e["vote"]["blockId"]["hash"] in by_block)  # fmt: skip
    assert sum(e["vote"]["blockId"]["hash"] in by_block for e in votes) > len(votes) // 2
    printed = [e for e in proposals if "parts_hash_fp" in (e.get("extra") or {})]
    wal = store.query("SELECT count(*) FROM sources WHERE run_id = ? AND format = 'cometbft-wal'", [rid])[0][0] > 0
    assert wal or printed
    assert all(e["proposal"]["blockId"]["partSetHeader"]["hash"][:12] == e["extra"]["parts_hash_fp"] for e in printed)


@pytest.fixture(scope="module")
def scenario_runs(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[DuckDBStore, int]]:
    """The simulated network of bench/answers_snapshot.py (slow node, escalation, silent validator, a clock offset),
    smaller, ingested twice into two stores: several p2p receipts of a node share a timestamp."""
    root = tmp_path_factory.mktemp("scenario")
    config = build_config(nodes=4, heights=6, seed=7, slow_node=0, escalations=[4], silent=[3], clock_offsets={1: 40.0})
    simulate(config, root / "net")
    return [_ingest(root / f"copy{i}", root / "net") for i in range(2)]


def _keys(store: DuckDBStore, rid: int, flt: EventFilter, limit: int) -> list[tuple[int, int]]:
    """Every entry's (ts, id), page by page through the cursors."""
    span, tables = _span(store, rid), lookup_tables(store, rid)
    seen: list[tuple[int, int]] = []
    after = None
    while True:
        page = fetch_page(store, rid, flt, limit=limit, after=after, before=None, offset=0, span=span, tables=tables)
        seen += [(r[0], r[1]) for r in page]
        if len(page) < limit:
            return seen
        after = seen[-1]


def test_entry_ids_are_unique_and_small_pages_return_every_entry_once(
    scenario_runs: list[tuple[DuckDBStore, int]],
) -> None:
    store, rid = scenario_runs[0]
    shared = store.query("SELECT receiver, recv_ts FROM deliveries WHERE run_id = ? AND recv_ts IS NOT NULL"
                         " GROUP BY ALL HAVING count(*) > 1 ORDER BY recv_ts", [rid])  # fmt: skip
    assert len(shared) > 10  # the case at stake: deliveries received by one node in the same nanosecond
    everything = [(r[0], r[1]) for r in fetch_page(store, rid, EventFilter(), limit=10**7, after=None, before=None,
                                                   offset=0, span=_span(store, rid))]  # fmt: skip
    ids = [i for _, i in everything]
    n_events = store.query("SELECT count(*) FROM events WHERE run_id = ?", [rid])[0][0]
    received = store.query("SELECT count(*) FROM deliveries WHERE run_id = ? AND recv_ts IS NOT NULL", [rid])[0][0]
    assert len(set(ids)) == len(ids) == n_events + received
    assert everything == sorted(everything)
    assert _keys(store, rid, EventFilter(), 2500) == everything
    # through the first shared nanosecond two entries a page, and its deliveries one a page: a cursor between
    # entries of one nanosecond resumes exactly after it
    at = shared[0][1]
    for limit, kinds in ((2, []), (1, ["delivery"])):
        inside = [k for k in everything if k[0] == at and (not kinds or k[1] > DELIVERY_ID)]
        assert sum(i > DELIVERY_ID for _, i in inside) >= 2
        assert _keys(store, rid, EventFilter(kinds=kinds, from_ns=at, to_ns=at), limit) == inside


def test_two_ingests_of_the_same_files_give_the_same_pages(scenario_runs: list[tuple[DuckDBStore, int]]) -> None:
    """Read in one process (small inputs), the same files get the same event ids, so the pages are equal byte for
    byte — ids included. (Parallel parsing numbers events as batches arrive: see families/cometbft/eventpage.py.)"""
    pages = []
    for store, rid in scenario_runs:
        pages.append(fetch_page(store, rid, EventFilter(), limit=10**7, after=None, before=None, offset=0,
                                span=_span(store, rid)))  # fmt: skip
        pages.append(fetch_page(store, rid, EventFilter(kinds=["delivery"]), limit=10**7, after=None, before=None,
                                offset=0, span=_span(store, rid)))  # fmt: skip
    assert len(pages[1]) > 100
    assert pages[0] == pages[2] and pages[1] == pages[3]


def test_deliveries_keep_the_events_they_paired(run: tuple[DuckDBStore, int]) -> None:
    """``send_event``/``recv_event`` are the events an independent re-matching in Python pairs (tests/families/cometbft/
    reference.py: first in, first out by (ts, id); logical: the first by (ts, id)); each receive is paired once."""
    store, rid = run
    want = sorted((d.sender, d.receiver, d.sent, d.recv, d.send_event, d.recv_event) for d in reference.deliveries(
        store, rid))  # fmt: skip
    got = sorted(tuple(r) for r in store.query("SELECT sender, receiver, sent_ts, recv_ts, send_event, recv_event"
                                               " FROM deliveries WHERE run_id = ?", [rid]))  # fmt: skip
    assert got == want and len(got) > 100
    received = [r[5] for r in got if r[5] is not None]
    assert len(set(received)) == len(received)
