"""The state behind ``bftscope top``, fed the real v0.34 testnet's node0 in time order (its WAL, as live rows).

Expected values are computed independently from the stored events with SQL."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from bftscope.config import Settings
from bftscope.families.cometbft.synthetic.network import build_config, simulate
from bftscope.families.cometbft.top.recorded import live_rows
from bftscope.families.cometbft.top.state import TopState
from bftscope.families.cometbft.top.view import SourceStatus
from bftscope.families.cometbft.validators.priority import genesis, proposer_at, schedule
from bftscope.families.cometbft.validators.validator import Validator
from bftscope.ingest.pipeline import ingest
from bftscope.store import DuckDBStore
from tests.families.cometbft.top.conftest import Recorded

CONNECTED = SourceStatus("connected", "v034", "wal:node0")


def _state(rec: Recorded, rows: list[dict[str, Any]], **kw: Any) -> TopState:
    state = TopState(rec.validators, names=rec.names, **kw)
    state.set_status(CONNECTED)
    state.feed(rows)
    return state


def _upto(rec: Recorded, height: int, step: str) -> list[dict[str, Any]]:
    """Rows up to and including node0 entering ``step`` at ``height`` round 0."""
    for i, r in enumerate(rec.rows):
        if r["kind"] == "step" and r["height"] == height and r["round"] == 0 and r["step"] == step:
            return rec.rows[: i + 1]
    raise AssertionError(f"no step {step} at {height}")


def _first_votes(rec: Recorded, height: int, before_ns: int) -> dict[tuple[str, str], str | None]:
    """(type, validator) → block hash of each vote node0 had at ``height`` round 0 before ``before_ns``."""
    rows = rec.sql(
        "SELECT vote_type, validator, arg_min(block_hash, ts) FROM events WHERE run_id = :run AND node = :node"
        " AND msg_type = 'vote' AND height = :h AND round = 0 AND ts <= :t GROUP BY 1, 2",
        h=height, t=before_ns,
    )  # fmt: skip
    return {(t, v): b for t, v, b in rows}


def test_adapter_gives_each_vote_once(node0: Recorded) -> None:
    votes = [r for r in node0.rows if r["kind"] == "vote_added"]
    keys = [(r["height"], r["round"], r["vote_type"], r["validator"]) for r in votes]
    (distinct,) = node0.sql(
        "SELECT count(DISTINCT (height, round, vote_type, validator)) FROM events"
        " WHERE run_id = :run AND node = :node AND msg_type = 'vote'"
    )
    assert len(keys) == len(set(keys)) == distinct[0] > 0
    ts = [r["ts"] for r in node0.rows]
    assert ts == sorted(ts)


def test_votes_and_tallies_at_the_precommit_step(node0: Recorded) -> None:
    for height in (5, 40):
        rows = _upto(node0, height, "precommit")
        state = _state(node0, rows)
        view = state.view(rows[-1]["ts"])
        assert (view.height, view.round, view.step, view.step_age_s) == (height, 0, "precommit", 0.0)
        seen = _first_votes(node0, height, rows[-1]["ts"])
        for line in view.validators:
            for vtype, mark in (("prevote", line.prevote), ("precommit", line.precommit)):
                want = "waiting" if (vtype, line.address) not in seen else "block"
                assert mark == want, (height, line.name, vtype)
        prevote, precommit = view.tallies
        n_prevotes = sum(1 for t, _ in seen if t == "prevote")
        assert prevote.vote_type == "prevote" and prevote.seen == prevote.for_block == n_prevotes
        assert (prevote.total, prevote.threshold) == (4, 3)  # four validators of power 1: +2/3 is 3
        # CometBFT enters precommit once it has +2/3 prevotes (or timed out): the tally shows it reached
        assert prevote.reached and n_prevotes >= 3
        assert precommit.seen == sum(1 for t, _ in seen if t == "precommit")
        assert [v.name for v in view.validators] == ["node3", "node2", "node0", "node1"]  # set order


def test_recent_heights_durations_rounds(node0: Recorded) -> None:
    state = _state(node0, node0.rows, recent=10)
    view = state.view(node0.rows[-1]["ts"])
    starts = dict(node0.sql("SELECT height, min(ts) FROM events WHERE run_id = :run AND node = :node AND kind = 'step'"
                            " AND step = 'new_height' GROUP BY 1"))  # fmt: skip
    commits = dict(node0.sql("SELECT height, min(ts) FROM events WHERE run_id = :run AND node = :node"
                             " AND kind = 'step' AND step = 'commit' GROUP BY 1"))  # fmt: skip
    last = max(commits)
    assert [h.height for h in view.recent] == list(range(last, last - 10, -1))
    for line in view.recent:
        assert line.rounds == 1 and line.committed and not line.gap
        assert line.duration_ms is not None
        assert abs(line.duration_ms - (commits[line.height] - starts[line.height]) / 1e6) < 1e-6
        assert line.proposer is None  # a WAL records no NewRound with its proposer, and no NewBlock


def test_arrival_delays_are_medians_over_recent_heights(node0: Recorded) -> None:
    state = _state(node0, node0.rows, delay_window=20)
    view = state.view(node0.rows[-1]["ts"])
    top = max(r["height"] for r in node0.rows if r["kind"] == "step")
    firsts = node0.sql(
        "SELECT height, vote_type, validator, min(ts) FROM events WHERE run_id = :run AND node = :node"
        " AND msg_type = 'vote' AND height > :lo AND round = 0 GROUP BY ALL", lo=top - 20,
    )  # fmt: skip
    round_first: dict[tuple[int, str], int] = {}
    for h, t, _, ts in firsts:
        round_first[(h, t)] = min(ts, round_first.get((h, t), ts))
    delays: dict[str, list[int]] = {}
    for h, t, v, ts in firsts:
        delays.setdefault(v, []).append(ts - round_first[(h, t)])
    want = {v: statistics.median(d) / 1e6 for v, d in delays.items()}
    got = {line.address: line.delay_ms for line in view.validators}
    assert got.keys() == want.keys()
    for addr, ms in want.items():
        assert got[addr] is not None and abs(got[addr] - ms) < 1e-6
    assert [s.address for s in view.slowest] == sorted(want, key=lambda a: (-want[a], a))
    assert min(want.values()) == 0.0 < max(want.values())  # node0's own votes are often first


def test_lost_connection_says_unknown_never_missing(node0: Recorded) -> None:
    rows = _upto(node0, 12, "prevote")
    state = _state(node0, rows)
    before = state.view(rows[-1]["ts"])
    assert {line.precommit for line in before.validators} == {"waiting"}
    state.set_status(SourceStatus("reconnecting", "v034", "wal:node0", detail="connection reset"))
    lost = state.view(rows[-1]["ts"])
    assert {line.precommit for line in lost.validators} == {"unknown"}
    # what was seen stays seen; what was not is unknown
    assert [line.prevote for line in lost.validators] == [
        "block" if line.prevote == "block" else "unknown" for line in before.validators
    ]
    state.set_status(CONNECTED)  # back, mid-round: this round was not watched whole
    assert {line.precommit for line in state.view(0).validators} == {"unknown"}
    rest = node0.rows[len(rows) :]
    state.feed(rest[: next(i for i, r in enumerate(rest) if r["kind"] == "step" and r["height"] == 13) + 1])
    assert {line.precommit for line in state.view(0).validators} == {"waiting"}  # a new height watched from its start
    assert next(h for h in state.view(0).recent if h.height == 12).rounds is None  # not watched whole


def test_observation_gap_rows_make_heights_unknown(node0: Recorded) -> None:
    rows = _upto(node0, 20, "prevote")
    state = _state(node0, rows)
    state.feed([{"ts": rows[-1]["ts"], "kind": "observation_gap", "height": 20,
                 "extra": '{"end_ns": 1, "reason": "test", "to_height": 21}'}])  # fmt: skip
    view = state.view(0)
    assert {line.precommit for line in view.validators} == {"unknown"}
    assert next(h for h in view.recent if h.height == 20).gap


def test_bad_rows_are_counted_not_raised(node0: Recorded) -> None:
    state = _state(node0, _upto(node0, 3, "prevote"))
    state.feed([
        {"kind": "vote_added", "height": 3, "round": 0, "vote_type": "prevote"},  # no validator
        {"kind": "step", "height": 3, "round": "x", "step": "commit"},
        {"kind": "vote_added", "height": None},
        {"kind": "validator_update", "validator": "AB", "extra": "{not json"},
        {"kind": "something_else", "height": 3},
        {"kind": "step", "height": 3, "round": 0, "step": "commit", "ts": "not a time"},
    ])  # fmt: skip
    assert state.skipped == {"vote_added: bad round, type or validator": 1, "step: bad round or step": 1,
                             "vote_added: no height": 1, "validator_update: bad validator or power": 1}  # fmt: skip
    assert state.view(0).step == "commit"


def test_commit_sigs_and_duplicates_do_not_move_arrivals(node0: Recorded) -> None:
    rows = _upto(node0, 30, "commit")
    state = _state(node0, rows)
    before = state.view(0)
    have = {line.address for line in before.validators if line.precommit == "block"}
    late = [line.address for line in before.validators if line.precommit == "waiting"]
    assert have and late  # at its commit step node0 had not yet every precommit
    dup = [dict(r) for r in rows if r["kind"] == "vote_added" and r["height"] == 30]
    for r in dup:
        r["ts"] += 10**9
    sigs = [{"ts": rows[-1]["ts"] + 1, "kind": "commit_sig", "height": 30, "round": 0, "vote_type": "precommit",
             "validator": a, "block_hash": None, "extra": {"flag": 3}} for a in sorted(have)]  # fmt: skip
    state.feed(dup + sigs)
    after = state.view(0)
    assert (after.validators, after.tallies, after.slowest) == (before.validators, before.tallies, before.slowest)
    # a commit signature for a vote not seen gives its status, not an arrival time
    state.feed([{**sigs[0], "validator": late[0], "extra": '{"flag": 3, "source": "commit"}'}])
    line = next(v for v in state.view(0).validators if v.address == late[0])
    assert line.precommit == "nil"
    assert line.delay_ms == next(v for v in before.validators if v.address == late[0]).delay_ms


def test_validator_updates_take_effect_at_their_height(node0: Recorded) -> None:
    rows = _upto(node0, 8, "propose")
    state = _state(node0, rows)
    addr = node0.validators[0].address
    state.feed([{"ts": 0, "kind": "validator_update", "validator": addr, "height": 10,
                 "extra": {"power": 5, "proposer_priority": 0}}])  # fmt: skip
    assert state.view(0).tallies[0].total == 4
    state.feed(_upto(node0, 10, "propose")[len(rows) :])
    assert state.view(0).tallies[0].total == 8 and state.view(0).tallies[0].threshold == 6


def test_proposers_come_from_new_round_and_new_block(node0: Recorded) -> None:
    # The rows the RPC gives and a WAL lacks, with the proposer CometBFT's rule designates from genesis.json
    hs = schedule(genesis((v.address, v.power) for v in node0.validators), 31)  # heights 1..31
    rows = _upto(node0, 30, "commit")
    state = _state(node0, rows)
    state.feed([{"ts": rows[-1]["ts"] + 1, "kind": "block_committed", "height": 30, "validator": hs[29].proposer,
                 "block_hash": "AB", "extra": {"num_txs": 0, "source": "rpc"}}])  # fmt: skip
    state.feed([{"ts": rows[-1]["ts"] + 2, "kind": "step", "height": 31, "round": 0, "step": "new_round",
                 "validator": proposer_at(hs[30], 0), "validator_index": 0}])  # fmt: skip
    state.feed([{"ts": rows[-1]["ts"] + 3, "kind": "step", "height": 31, "round": 0, "step": "commit"}])
    recent = {h.height: h for h in state.view(0).recent}
    assert recent[30].proposer == node0.names[hs[29].proposer]
    assert recent[31].proposer == node0.names[proposer_at(hs[30], 0)] != recent[30].proposer
    assert recent[29].proposer is None


def test_a_second_round_on_a_simulated_network(tmp_path: Path) -> None:
    """The simulator's height 3 needs two rounds: the view follows round 1 and counts two rounds for the height."""
    settings = Settings(data_dir=tmp_path / "store")
    simulate(build_config(nodes=4, heights=6, seed=3, escalations=[3]), tmp_path / "net")
    store = DuckDBStore.open(settings.store_path, settings)
    ingest(store, "sim", [tmp_path / "net"], settings)
    run_id = store.get_run("sim").id
    nodes = store.nodes(run_id)
    validators = [Validator(n.validator, 1, None, i) for i, n in enumerate(sorted(nodes, key=lambda n: n.validator))]
    rows = list(live_rows(store, run_id, nodes[0].node))
    names = {n.validator: n.label for n in nodes}
    proposers = dict(store.query("SELECT height, validator FROM events WHERE run_id = :run AND node = :node"
                                 " AND kind = 'block_committed'", {"run": run_id, "node": nodes[0].node}))  # fmt: skip
    store.close()
    state = TopState(validators, names=names)
    state.set_status(CONNECTED)
    i = next(i for i, r in enumerate(rows) if r["kind"] == "step" and (r["height"], r["round"]) == (3, 1))
    state.feed(rows[: i + 1])
    view = state.view(rows[i]["ts"])
    assert (view.height, view.round, view.step) == (3, 1, "new_round")
    assert [t.seen for t in view.tallies] == [0, 0]  # round 0's votes are not round 1's
    assert {v.prevote for v in view.validators} == {"waiting"}
    state.feed(rows[i + 1 :])
    recent = {h.height: h for h in state.view(0).recent}
    assert recent[3].rounds == 2 and all(recent[h].rounds == 1 for h in recent if h not in (3, max(recent)))
    assert recent[3].proposer == names[proposers[3]]
