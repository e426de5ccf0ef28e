"""Missed votes on the real 4-node v0.34 testnet: what the WALs show, a validator whose votes are gone, an
observation gap, and commit signatures filling a gap. Expectations come from the raw WAL records (protobuf
runtime) and from the store's own events, never from bftscope's answer itself."""

from __future__ import annotations

import itertools
import json
import shutil
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from bftscope.config import Settings
from bftscope.errors import InputError
from bftscope.families.cometbft.missed import answer
from bftscope.families.cometbft.missed.summary import summarize
from bftscope.families.cometbft.missed.votes import missed
from bftscope.ingest.pipeline import ingest
from bftscope.model import ROW_SCHEMA
from bftscope.store import DuckDBStore
from tests.families.cometbft.parse.test_proto import TM, split_frames

# The validator whose votes the tests take away (node3 of the testnet).
DROPPED = "032DF8EFA3F8F921BFCAD4E72AC251A5760F3E4C"
_SOURCES = itertools.count()


@pytest.fixture(scope="module")
def ingested(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store holding the testnet as run ``v034``, closed: each test opens its own copy."""
    from tests.conftest import require_data

    data = require_data("cometbft/tendermint-v0.34-4node-wal")
    folder = tmp_path_factory.mktemp("v034")
    settings = Settings(data_dir=folder, query_timeout_s=30)
    store = DuckDBStore.open(settings.store_path, settings)
    ingest(store, "v034", [data], settings)
    store.close()
    return folder


@pytest.fixture
def v034(ingested: Path, tmp_path: Path) -> tuple[DuckDBStore, int]:
    shutil.copytree(ingested, tmp_path / "copy")
    settings = Settings(data_dir=tmp_path / "copy", query_timeout_s=30)
    store = DuckDBStore.open(settings.store_path, settings)
    return store, store.get_run("v034").id


def _append(store: DuckDBStore, rid: int, node: int, rows: list[dict[str, Any]]) -> None:
    """Add rows of the neutral event model to ``node`` of the run (as a live source would)."""
    name = f"test:{next(_SOURCES)}"  # a source per call (the same content hash would replace the earlier one)
    src = store.begin_source(rid, node, name, "live", name, 0)
    table = pa.table({f.name: pa.array([r.get(f.name) for r in rows], type=f.type) for f in ROW_SCHEMA},
                     schema=ROW_SCHEMA)  # fmt: skip
    store.append_events(rid, node, src.id, table)
    store.flush_events()


def _own_votes(wal_testnet: Path) -> dict[tuple[int, int, str], set[str]]:
    """(height, round, type) → validators whose own vote for a block its node's WAL holds."""
    timed = TM["tendermint.consensus.TimedWALMessage"]
    out: dict[tuple[int, int, str], set[str]] = defaultdict(set)
    for i in range(4):
        for payload in split_frames((wal_testnet / f"node{i}" / "data" / "cs.wal" / "wal").read_bytes()):
            rec = timed.FromString(payload)
            if rec.msg.WhichOneof("sum") != "msg_info" or rec.msg.msg_info.msg.WhichOneof("sum") != "vote":
                continue
            v = rec.msg.msg_info.msg.vote.vote
            if not rec.msg.msg_info.peer_id and v.block_id.hash:
                kind = {1: "prevote", 2: "precommit"}[v.type]
                out[(v.height, v.round, kind)].add(v.validator_address.hex().upper())
    return out


def _committed(store: DuckDBStore, rid: int) -> list[int]:
    return [h for (h,) in store.query("SELECT DISTINCT height FROM events WHERE run_id = ? AND kind = 'step'"
                                      " AND step = 'commit' ORDER BY 1", [rid])]  # fmt: skip


def _unwatched(store: DuckDBStore, rid: int) -> set[int]:
    """Heights no node watched whole: the last one (no node moved past it) and those every node was
    restarted in (the testnet was stopped and started again at height 50)."""
    last = store.query("SELECT max(height) FROM events WHERE run_id = ? AND kind = 'step'", [rid])[0][0]
    nodes = len(store.nodes(rid))
    restarts = store.query("SELECT height FROM events WHERE run_id = ? AND kind = 'node_restart'"
                           " GROUP BY height HAVING count(DISTINCT node) = ?", [rid, nodes])  # fmt: skip
    return {int(last)} | {int(h) for (h,) in restarts}


def test_the_testnet_misses_nothing(v034: tuple[DuckDBStore, int], wal_testnet: Path) -> None:
    store, rid = v034
    rows = missed(store, rid)
    genesis = json.loads((wal_testnet / "node0" / "config" / "genesis.json").read_text())
    validators = {v["address"] for v in genesis["validators"]}
    by_height: dict[int, set[tuple[str, str]]] = defaultdict(set)
    for r in rows:
        by_height[r["height"]].add((r["validator"], r["type"]))
    committed = _committed(store, rid)
    assert len(committed) == 77
    for h in committed:  # every committed height: each genesis validator, both types
        assert by_height[h] == {(v, t) for v in validators for t in ("prevote", "precommit")}, h
    assert "absent" not in Counter(r["status"] for r in rows)
    own = _own_votes(wal_testnet)
    voted = {(r["height"], r["round"], r["type"], r["validator"]) for r in rows if r["status"] == "voted"}
    assert {(h, rd, t, v) for (h, rd, t), vals in own.items() for v in vals} <= voted
    assert all(r["power"] == 1 and not r["solo"] for r in rows)
    assert {r["height"] for r in rows if r["commit_round"]} == set(committed)


def test_a_validator_whose_votes_are_gone_is_absent_alone(v034: tuple[DuckDBStore, int]) -> None:
    store, rid = v034
    store.execute("DELETE FROM events WHERE run_id = ? AND msg_type = 'vote' AND validator = ?", [rid, DROPPED])
    rows = missed(store, rid)
    unwatched = _unwatched(store, rid)
    assert unwatched == {50, 77}
    mine = [r for r in rows if r["validator"] == DROPPED]
    assert len(mine) == 2 * 77
    for r in mine:
        want = ("unknown", False) if r["height"] in unwatched else ("absent", True)
        assert (r["status"], r["solo"]) == want, r
    others = Counter(r["status"] for r in rows if r["validator"] != DROPPED)
    assert others == {"voted": 3 * 2 * 77}
    summary = {s["validator"]: s for s in summarize(rows)}
    # heights 1-49 missed, 50 not watched (the restart), 51-76 missed, 77 not watched (the capture's end)
    assert summary[DROPPED]["longest_streak"] == {"length": 49, "from": 1, "to": 49}
    assert summary[DROPPED]["uptime"] == {"window": 77, "signed": 0, "missed": 75, "unknown": 2, "uptime": 0.0,
                                          "from": 1, "to": 77}  # fmt: skip
    assert summary[DROPPED]["solo"] == 150
    assert all(s["uptime"]["uptime"] == 1.0 and s["longest_streak"] is None
               for v, s in summary.items() if v != DROPPED)  # fmt: skip


def test_an_observation_gap_is_unknown_never_absent(v034: tuple[DuckDBStore, int]) -> None:
    store, rid = v034
    store.execute("DELETE FROM events WHERE run_id = ? AND msg_type = 'vote' AND validator = ?", [rid, DROPPED])
    def steps(lo: int, hi: int) -> dict[int, tuple[int, int]]:
        return {n: (a, b) for n, a, b in store.query(
            "SELECT node, min(ts), max(ts) FROM events WHERE run_id = ? AND kind = 'step' AND height BETWEEN ? AND ?"
            " GROUP BY node", [rid, lo, hi])}  # fmt: skip

    early, late = steps(20, 25), steps(30, 31)
    assert len(early) == len(late) == 4
    for node in range(4):  # every observer lost heights 20-25 (a follower's gap row) and its time of 30-31
        _append(store, rid, node, [
            {"ts": early[node][0], "kind": "observation_gap", "height": 20,
             "extra": json.dumps({"end_ns": early[node][1], "reason": "test", "to_height": 25})},
            {"ts": late[node][0], "kind": "observation_gap",
             "extra": json.dumps({"end_ns": late[node][1], "reason": "test"})}])  # fmt: skip
    # one observer alone losing height 40 changes nothing: the others watched it
    _append(store, rid, 0, [{"ts": 1, "kind": "observation_gap", "height": 40,
                             "extra": json.dumps({"end_ns": 2, "reason": "test", "to_height": 40})}])  # fmt: skip
    status = {r["height"]: r["status"] for r in missed(store, rid, validators=[DROPPED]) if r["type"] == "precommit"}
    for h in range(20, 26):
        assert status[h] == "unknown"
    assert status[30] == status[31] == "unknown"
    assert {h: status[h] for h in (19, 26, 29, 32, 40)} == dict.fromkeys((19, 26, 29, 32, 40), "absent")
    # the other validators' votes were seen in the gaps: still voted
    assert {r["status"] for r in missed(store, rid, from_height=20, to_height=31) if r["validator"] != DROPPED} == {
        "voted"}


def test_commit_signatures_fill_a_gap(v034: tuple[DuckDBStore, int], wal_testnet: Path) -> None:
    store, rid = v034
    vals = [v["address"] for v in json.loads((wal_testnet / "node0" / "config" / "genesis.json").read_text())
            ["validators"]]  # fmt: skip
    ts = store.query("SELECT min(ts) FROM events WHERE run_id = ? AND height = 20", [rid])[0][0]
    store.execute("DELETE FROM events WHERE run_id = ? AND height BETWEEN 20 AND 25", [rid])  # nothing observed
    flags = dict(zip(vals, (2, 3, 1, 2), strict=True))  # commit, nil, absent from the commit, commit
    sigs = [{"ts": ts + h, "kind": "commit_sig", "height": h, "round": 0, "vote_type": "precommit", "validator": v,
             "validator_index": i, "block_hash": "AB" * 32 if flags[v] == 2 else None,
             "extra": json.dumps({"flag": flags[v], "source": "commit"})}
            for h in range(20, 26) for i, v in enumerate(vals)]  # fmt: skip
    for node in range(4):
        _append(store, rid, node, [{"ts": ts, "kind": "observation_gap", "height": 20,
                                    "extra": json.dumps({"end_ns": ts + 99, "reason": "test", "to_height": 25})}])
    _append(store, rid, 0, sigs)
    rows = missed(store, rid, from_height=20, to_height=25)
    assert {r["height"] for r in rows} == set(range(20, 26))
    want = {vals[0]: "voted", vals[1]: "nil", vals[2]: "unknown", vals[3]: "voted"}
    for r in rows:
        assert r["status"] == (want[r["validator"]] if r["type"] == "precommit" else "unknown"), r
        assert r["commit_round"] and not r["solo"]


def _ns(t: Any) -> int:
    return int(t.seconds) * 1_000_000_000 + int(t.nanos)


def test_one_observer_tells_late_from_voted(v034: tuple[DuckDBStore, int], wal_testnet: Path) -> None:
    # Only node0's records, as a live monitor of one node: a vote for a block it first saw after it had
    # committed the height is late — the raw WAL says which.
    store, rid = v034
    store.execute("DELETE FROM events WHERE run_id = ? AND node <> 0", [rid])
    timed = TM["tendermint.consensus.TimedWALMessage"]
    commit: dict[int, int] = {}
    first: dict[tuple[int, int, str, str], int] = {}
    for payload in split_frames((wal_testnet / "node0" / "data" / "cs.wal" / "wal").read_bytes()):
        rec = timed.FromString(payload)
        which = rec.msg.WhichOneof("sum")
        if which == "event_data_round_state" and rec.msg.event_data_round_state.step == "RoundStepCommit":
            commit.setdefault(rec.msg.event_data_round_state.height, _ns(rec.time))
        elif which == "msg_info" and rec.msg.msg_info.msg.WhichOneof("sum") == "vote":
            v = rec.msg.msg_info.msg.vote.vote
            assert v.block_id.hash  # the testnet has no nil vote
            key = (v.height, v.round, {1: "prevote", 2: "precommit"}[v.type], v.validator_address.hex().upper())
            first.setdefault(key, _ns(rec.time))
    rows = missed(store, rid)
    got = {(r["height"], r["round"], r["type"], r["validator"]): r["status"] for r in rows}
    want = {k: "late" if k[0] in commit and t > commit[k[0]] else "voted" for k, t in first.items()}
    assert {k: got[k] for k in want} == want
    late = Counter(k[2] for k, s in want.items() if s == "late")
    assert late["precommit"] > 0 and late["precommit"] > late["prevote"]  # the precommits after +2/3, mostly
    assert {s for k, s in got.items() if k not in want} <= {"unknown"}  # nothing else seen: never absent


@pytest.mark.parametrize("node", [1, 2, 3])
def test_no_single_observer_shows_an_absent_vote(v034: tuple[DuckDBStore, int], node: int) -> None:
    # The "replay node by node: no absent except at the edges" (node0: the test above).
    store, rid = v034
    store.execute("DELETE FROM events WHERE run_id = ? AND node <> ?", [rid, node])
    rows = missed(store, rid)
    assert len(rows) == 77 * 4 * 2 and "absent" not in {r["status"] for r in rows}
    # unknown: the edges, or a prevote gossip never brought (its precommit came)
    status = {(r["height"], r["type"], r["validator"]): r["status"] for r in rows}
    for (h, t, v), s in status.items():
        if s == "unknown" and h not in (1, 50, 77):
            assert t == "prevote" and status[(h, "precommit", v)] in ("voted", "late"), (h, v)


def test_a_capture_joined_midway_starts_unknown(v034: tuple[DuckDBStore, int]) -> None:
    store, rid = v034
    store.execute("DELETE FROM events WHERE run_id = ? AND height < 10", [rid])  # the capture starts in height 10
    store.execute("DELETE FROM events WHERE run_id = ? AND msg_type = 'vote' AND validator = ?", [rid, DROPPED])
    status = {r["height"]: r["status"] for r in missed(store, rid, validators=[DROPPED]) if r["type"] == "prevote"}
    assert min(status) == 10 and status[10] == "unknown" and status[11] == "absent"


def test_filters_and_pages(v034: tuple[DuckDBStore, int]) -> None:
    store, rid = v034
    store.execute("DELETE FROM events WHERE run_id = ? AND msg_type = 'vote' AND validator = ?", [rid, DROPPED])
    every = missed(store, rid)
    absent = missed(store, rid, statuses=["absent"], from_height=10, to_height=12)
    assert absent == [r for r in every if r["status"] == "absent" and 10 <= r["height"] <= 12]
    assert [r["type"] for r in absent] == ["prevote", "precommit"] * 3
    pages = [missed(store, rid, limit=100, offset=o) for o in range(0, len(every) + 100, 100)]
    assert [r for p in pages for r in p] == every
    one = missed(store, rid, validators=[DROPPED.lower()])
    assert one == [r for r in every if r["validator"] == DROPPED]  # solo stays relative to the whole set
    with pytest.raises(ValueError, match="unknown status"):
        missed(store, rid, statuses=["gone"])


def test_a_summary_without_a_range_covers_the_last_heights(v034: tuple[DuckDBStore, int],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    store, rid = v034
    monkeypatch.setattr(answer, "DEFAULT_SPAN", 10)
    got = answer.missed_summary(store, rid, window=100)
    assert (got["from"], got["to"]) == (68, None)
    assert all(v["uptime"]["window"] == 10 and sum(v["counts"]["prevote"].values()) == 10 for v in got["validators"])
    whole = answer.missed_summary(store, rid, from_height=0, window=100)
    assert all(v["uptime"]["window"] == 77 for v in whole["validators"])
    with pytest.raises(InputError, match="window"):
        answer.missed_summary(store, rid, window=0)
