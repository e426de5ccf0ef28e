"""A network the server followed before (a server restarted) is resumed, as `bftscope watch` resumes a run."""

from __future__ import annotations

from bftscope.config import Settings
from bftscope.families import registry
from bftscope.ingest.livesink import StoreSink
from bftscope.store import open_store


def test_the_family_follower_resumes_a_run_it_followed_before(settings: Settings) -> None:
    store = open_store(settings)
    try:
        sink = StoreSink(store, "net:a", "cometbft", update_every_s=None)
        vote = {"kind": "vote_added", "height": 5, "round": 0, "vote_type": "precommit", "msg_type": "vote",
                "validator": "AB" * 20, "validator_index": 0}  # fmt: skip
        sink.write("n0", [{"ts": 10**18, **vote},
                          {"ts": 10**18 + 1, "kind": "block_committed", "height": 5}])  # fmt: skip
        sink.flush()
        follower = registry.family("cometbft").follower("a", ["http://127.0.0.1:9"], sink, store=store, run="net:a")
        status = follower.status()
        assert status.committed == 5  # it goes on from there: the heights since become a backfilled gap
        # what the run holds is not written again when a node sends it once more
        assert follower._seen.fresh([vote]) == []
        assert follower._seen.fresh([{**vote, "height": 6}]) != []
    finally:
        store.close()
