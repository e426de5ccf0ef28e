"""Filters and keyset cursors: every filter against the rows it must select, and cursor walks that see the whole
set exactly once while entities are inserted between their pages, without ever skipping rows by offset."""

from __future__ import annotations

import random
from typing import Any

import pytest

from tests.families.casper.api.conftest import (
    CasperApi,
    accepted_copy,
    block_copy,
    hex64,
    iso,
    key66,
    processed_copy,
)

T0 = 1_700_000_000_000


def _blocks(api: CasperApi, heights: list[int]) -> list[dict[str, Any]]:
    """Blocks at ``heights`` with eras, times and proposers that vary with the height; their facts."""
    facts = [{"height": h, "era": h // 10, "ts": T0 + h * 16_384, "proposer": key66(h % 4)} for h in heights]
    api.write([block_copy(f["height"], era=f["era"], ts_ms=f["ts"], proposer=f["proposer"]) for f in facts])
    return facts


def _walk(api: CasperApi, path: str, limit: int, between: Any = None, **params: Any) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    cursor = ""
    for page in range(1000):
        r = api.get(path, cursor=cursor, limit=limit, **params)
        assert r.status_code == 200, r.text
        body = r.json()
        assert list(body) == ["data", "next_cursor"] and len(body["data"]) <= limit
        seen.extend(body["data"])
        if body["next_cursor"] is None:
            return seen
        cursor = body["next_cursor"]
        if between is not None:
            between(page)
    raise AssertionError("the walk did not end")


def test_block_filters_select_exactly_their_blocks(casper_api: CasperApi) -> None:
    facts = _blocks(casper_api, list(range(100, 160)))
    by_height = sorted(facts, key=lambda f: -f["height"])
    cases: list[tuple[dict[str, Any], Any]] = [
        ({"era": 12}, lambda f: f["era"] == 12),
        ({"proposer": key66(1)}, lambda f: f["proposer"] == key66(1)),
        ({"proposer": key66(1).upper()}, lambda f: f["proposer"] == key66(1)),
        ({"from": iso(T0 + 120 * 16_384), "to": iso(T0 + 131 * 16_384)}, lambda f: 120 <= f["height"] < 131),
        ({"minHeight": 150}, lambda f: f["height"] >= 150),
        ({"minHeight": 110, "maxHeight": 119, "proposer": key66(2)},
         lambda f: 110 <= f["height"] <= 119 and f["proposer"] == key66(2)),
        ({"era": 99}, lambda f: False),
    ]  # fmt: skip
    for params, wanted in cases:
        expected = [f["height"] for f in by_height if wanted(f)]
        body = casper_api.get("/blocks", limit=20, **params).json()
        assert body["itemCount"] == len(expected), params
        assert [b["height"] for b in body["data"]] == expected[:20], params
        assert [b["height"] for b in _walk(casper_api, "/blocks", 4, **params)] == expected, params


def test_a_block_walk_sees_every_block_once_while_blocks_arrive(casper_api: CasperApi) -> None:
    rng = random.Random(3)
    heights = rng.sample(range(10_000, 20_000), 120)
    _blocks(casper_api, heights)
    arrived: list[int] = []
    free = iter(h for h in rng.sample(range(1, 30_000), 3000) if h not in set(heights))

    def insert(_: int) -> None:  # new blocks above, inside and below the part already walked
        batch = [next(free) for _ in range(5)] + [20_000 + len(arrived)]
        arrived.extend(batch)
        _blocks(casper_api, batch)

    seen = [b["height"] for b in _walk(casper_api, "/blocks", 7, insert)]
    assert len(seen) == len(set(seen)), "a block was sent twice"
    assert seen == sorted(seen, reverse=True)
    assert set(heights) <= set(seen), "a block stored before the walk began was missed"
    # what arrived during the walk is seen exactly when it sorts after where the walk was
    assert set(seen) - set(heights) <= set(arrived)


def test_an_account_deploy_walk_sees_every_deploy_once_while_deploys_arrive(casper_api: CasperApi) -> None:
    account = key66(7)
    rng = random.Random(5)
    payloads = []
    for i in range(40):
        payloads.append(block_copy(3000 + i, era=1, ts_ms=T0 + i, proposer=key66(1)))
        for j in range(rng.randint(0, 3)):  # several deploys in one block: ties broken by hash
            payloads.append(processed_copy(hex64("d", i, j), account, hex64("block", 3000 + i), ts_ms=T0 + i))
    for i in range(15):  # accepted, not yet processed: after every deploy in a block
        payloads.append(accepted_copy(hex64("pending", i), account, ts_ms=T0 + 100 + i))
    casper_api.write(payloads)
    before = casper_api.get(f"/accountDeploys/{account}").json()["itemCount"]
    counter = iter(range(10_000))

    def insert(_: int) -> None:
        n = next(counter)
        casper_api.write([block_copy(5000 + n, era=2, ts_ms=T0 + 5000 + n, proposer=key66(1)),
                          processed_copy(hex64("new", n), account, hex64("block", 5000 + n), ts_ms=T0 + 5000 + n),
                          accepted_copy(hex64("new-pending", n), account, ts_ms=T0 + 6000 + n)])  # fmt: skip

    seen = [d["deployHash"] for d in _walk(casper_api, f"/accountDeploys/{account}", 6, insert)]
    assert len(seen) == len(set(seen)), "a deploy was sent twice"
    originals = {hex64("d", i, j) for i in range(40) for j in range(4)} | {hex64("pending", i) for i in range(15)}
    assert len(set(seen) & originals) == before
    # the envelope's order and the walk's agree on a quiet store
    quiet = [d["deployHash"] for d in _walk(casper_api, f"/accountDeploys/{account}", 1000)]
    paged = [d["deployHash"] for p in range(1, 100)
             for d in casper_api.get(f"/accountDeploys/{account}", page=p, limit=20).json()["data"]]  # fmt: skip
    assert quiet == paged


def test_cursor_pages_skip_nothing_by_offset(casper_api: CasperApi, monkeypatch: pytest.MonkeyPatch) -> None:
    _blocks(casper_api, list(range(1, 200)))
    casper_api.write([processed_copy(hex64("d", i), key66(3), hex64("block", i), ts_ms=T0) for i in range(1, 50)])
    statements: list[str] = []
    real = casper_api.store.query

    def spy(sql: str, params: Any = None) -> Any:
        statements.append(sql)
        return real(sql, params)

    monkeypatch.setattr(casper_api.store, "query", spy)
    assert len(_walk(casper_api, "/blocks", 9)) == 199
    assert len(_walk(casper_api, f"/accountDeploys/{key66(3)}", 9)) == 49
    assert statements and not [s for s in statements if "OFFSET" in s.upper() or "count(" in s.lower()]


def test_bad_cursors(casper_api: CasperApi) -> None:
    _blocks(casper_api, list(range(1, 30)))
    block_cursor = casper_api.get("/blocks", cursor="", limit=3).json()["next_cursor"]
    for path, cursor in (("/blocks", "not a cursor"), ("/blocks", "ZDEy"), (f"/accountDeploys/{key66(1)}",
                         block_cursor), ("/blocks", "Yjk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5"), ("/blocks", "é"),
                         ("/blocks", "x" * 500)):  # fmt: skip
        r = casper_api.get(path, cursor=cursor)
        assert r.status_code == 400 and r.text.startswith("Bad Request: cursor"), (path, cursor, r.text)
