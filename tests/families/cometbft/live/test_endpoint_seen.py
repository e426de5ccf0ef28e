"""Endpoint spellings and the de-duplication keys (small pure parts of the follower)."""

from __future__ import annotations

import json

import pytest

from bftscope.errors import InputError
from bftscope.families.cometbft.live.endpoint import parse_endpoint, subscribe_messages
from bftscope.families.cometbft.live.seen import Seen


@pytest.mark.parametrize(
    ("url", "http", "ws", "label"),
    [
        ("http://127.0.0.1:26657", "http://127.0.0.1:26657", "ws://127.0.0.1:26657/websocket", "127.0.0.1:26657"),
        ("tcp://node:26657/", "http://node:26657", "ws://node:26657/websocket", "node:26657"),
        ("wss://rpc.example.org/cosmos/websocket", "https://rpc.example.org/cosmos",
         "wss://rpc.example.org/cosmos/websocket", "rpc.example.org/cosmos"),
        ("10.0.0.7:26657", "http://10.0.0.7:26657", "ws://10.0.0.7:26657/websocket", "10.0.0.7:26657"),
        ("http://[::1]:26657", "http://[::1]:26657", "ws://[::1]:26657/websocket", "[::1]:26657"),
    ],
)  # fmt: skip
def test_endpoint_spellings(url: str, http: str, ws: str, label: str) -> None:
    e = parse_endpoint(url)
    assert (e.http, e.ws, e.label) == (http, ws, label)


@pytest.mark.parametrize("url", ["ftp://x:1", "http://", "http://user:pw@host:1", "http://h:1/?q=1", "http://h:99999"])
def test_bad_endpoints_are_refused(url: str) -> None:
    with pytest.raises(InputError):
        parse_endpoint(url)


def test_subscriptions_are_numbered_in_order() -> None:
    msgs = [json.loads(m) for m in subscribe_messages()]
    assert [m["id"] for m in msgs] == [1, 2, 3, 4, 5, 6]
    assert msgs[0]["params"]["query"] == "tm.event = 'Vote'"
    assert msgs[-1]["params"]["query"] == "tm.event = 'ValidatorSetUpdates'"  # the one a default node refuses


def test_seen_drops_repeats_and_forgets_old_heights() -> None:
    seen = Seen(keep_heights=10)
    vote = {"kind": "vote_added", "height": 5, "round": 0, "vote_type": "prevote", "validator": "AA"}
    gap = {"kind": "observation_gap", "height": 5}
    assert seen.fresh([vote, dict(vote), gap, gap]) == [vote, gap, gap] and seen.duplicates == 1
    assert seen.fresh([{**vote, "vote_type": "precommit"}, {**vote, "round": 1}]) != []
    seen.fresh({"kind": "block_committed", "height": h} for h in range(6, 200))
    assert seen.forgotten > 0 and seen.fresh([vote]) == [vote]  # far below the window: not remembered
    assert seen.fresh([{"kind": "block_committed", "height": 199}]) == []


def test_seen_keys_share_one_copy_of_each_name() -> None:
    """A network's frames decode every validator address and step name into a new string; the keys of ~1,000
    heights kept one of each per vote (20 networks: the follower's largest growing memory). Equal names now
    share one string."""
    seen = Seen()
    addr = "".join(["5917B48A13EFF68A47E9", "C309518DEB3E648749EE"])
    rows = [{"kind": "vote_added", "height": h, "round": 0, "vote_type": "prevote",
             "validator": "".join([addr[:20], addr[20:]])} for h in (1, 2)]  # fmt: skip
    steps = [{"kind": "step", "height": h, "round": 0, "step": "".join(["pre", "vote"])} for h in (1, 2)]
    assert rows[0]["validator"] is not rows[1]["validator"]
    seen.fresh(rows + steps)
    keys = [k for h in (1, 2) for k in sorted(seen._by_height[h], key=str)]
    votes = [k for k in keys if k[0] == "vote_added"]
    named = [k for k in keys if k[0] == "step"]
    assert votes[0][3] is votes[1][3] and named[0][2] is named[1][2]
