"""The CasperLabs event-store's routes on real payloads: its shapes, its text errors and its page envelope
(express-paginate's arithmetic), under ``/v1/casper/{network}/``."""

from __future__ import annotations

import json
import math
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from bftscope.families.casper.api import shapes
from tests.families.casper.api.conftest import (
    CasperApi,
    accepted_copy,
    block_copy,
    data_file,
    expired_copy,
    hex64,
    inner_of,
    key66,
    processed_copy,
    tagged,
)

REAL = ["casper-docs_node-events_BlockAdded.json", "sidecar_legacy_fixtures/raw_legacy_block_added.json",
        "casper-docs_node-events_DeployAccepted.json", "sidecar_legacy_fixtures/raw_legacy_deploy_accepted.json",
        "sidecar_legacy_fixtures/raw_legacy_deploy_processed.json", "casper-docs_node-events_DeployExpired.json",
        "sidecar_legacy_fixtures/raw_legacy_deploy_expired.json"]  # fmt: skip


def _real(api: CasperApi) -> None:
    api.write([data_file(n) for n in REAL])


def test_a_block_is_the_seeds_json(casper_api: CasperApi) -> None:
    _real(casper_api)
    legacy = inner_of("sidecar_legacy_fixtures/raw_legacy_block_added.json")
    header, body = legacy["block"]["header"], legacy["block"]["body"]
    r = casper_api.get(f"/block/{legacy['block_hash']}")
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    assert r.json() == {"blockHash": legacy["block_hash"], "parentHash": header["parent_hash"],
                        "timestamp": header["timestamp"], "eraId": header["era_id"], "proposer": body["proposer"],
                        "state": "added", "height": header["height"],
                        "deploys": body["deploy_hashes"] + body["transfer_hashes"]}  # fmt: skip
    assert list(r.json()) == ["blockHash", "parentHash", "timestamp", "eraId", "proposer", "state", "height", "deploys"]
    # the hash in upper case is the same block
    assert casper_api.get(f"/block/{legacy['block_hash'].upper()}").json() == r.json()


def test_unknown_and_malformed_hashes(casper_api: CasperApi) -> None:
    _real(casper_api)
    for route, missing in (("block", "Block not found."), ("deploy", "Deploy not found.")):
        r = casper_api.get(f"/{route}/{'ab' * 32}")
        assert (r.status_code, r.text) == (404, missing)
        assert r.headers["content-type"].startswith("text/plain")
        bad = casper_api.get(f"/{route}/unknown")
        assert bad.status_code == 400 and bad.text.startswith("Bad Request: ")


def test_deploy_states(casper_api: CasperApi) -> None:
    _real(casper_api)
    failed = inner_of("sidecar_legacy_fixtures/raw_legacy_deploy_processed.json")
    result = failed["execution_result"]["Failure"]
    assert casper_api.get(f"/deploy/{failed['deploy_hash']}").json() == {
        "deployHash": failed["deploy_hash"], "account": failed["account"], "state": "processed",
        "cost": int(result["cost"]), "errorMessage": result["error_message"], "blockHash": failed["block_hash"]}
    accepted = inner_of("casper-docs_node-events_DeployAccepted.json")
    assert casper_api.get(f"/deploy/{accepted['hash']}").json() == {
        "deployHash": accepted["hash"], "account": accepted["header"]["account"], "state": "accepted", "cost": None,
        "errorMessage": None, "blockHash": None}  # fmt: skip
    expired = inner_of("casper-docs_node-events_DeployExpired.json")["deploy_hash"]
    assert casper_api.get(f"/deploy/{expired}").json() == {
        "deployHash": expired, "account": None, "state": "expired", "cost": None, "errorMessage": None,
        "blockHash": None}  # fmt: skip


def test_a_processed_deploy_of_the_sidecar_sample(casper_api: CasperApi) -> None:
    casper_api.write([tagged("DeployAccepted", data_file("sidecar_USAGE_rest_06_deploy_accepted.json")),
                      tagged("DeployProcessed", data_file("sidecar_USAGE_rest_07_deploy_processed.json"))])  # fmt: skip
    p = inner_of("sidecar_USAGE_rest_07_deploy_processed.json")
    r = casper_api.get(f"/deploy/{p['deploy_hash']}")
    assert r.json() == {"deployHash": p["deploy_hash"], "account": p["account"], "state": "processed",
                        "cost": int(p["execution_result"]["Success"]["cost"]), "errorMessage": None,
                        "blockHash": p["block_hash"]}  # fmt: skip


def _express_pages(page: int, page_count: int) -> list[int]:
    """express-paginate's getArrayPages(req)(3, pageCount, page), transcribed from its JavaScript."""
    limit = 3
    end = min(max(page + limit // 2, limit), page_count)
    start = max(1, 1 if page < limit - 1 else end - limit + 1)
    return list(range(start, end + 1))


def _fill_blocks(api: CasperApi, n: int) -> list[int]:
    heights = [1000 + 7 * i for i in range(n)]
    api.write([block_copy(h, era=h // 50, ts_ms=1_700_000_000_000 + h * 1000, proposer=key66(h % 3))
               for h in reversed(heights)])  # fmt: skip
    return sorted(heights, reverse=True)


@pytest.mark.parametrize("n", [0, 1, 9, 10, 11, 23, 47])
def test_the_page_envelope(casper_api: CasperApi, n: int) -> None:
    heights = _fill_blocks(casper_api, n)
    for limit in (None, 1, 3, 10, 20):
        size = limit or 10
        pages = math.ceil(n / size)
        for page in sorted({1, 2, pages, pages + 1, max(1, pages - 1)}):
            params: dict[str, Any] = {"page": page} | ({"limit": limit} if limit else {})
            r = casper_api.get("/blocks", **params)
            assert r.status_code == 200, r.text
            body = r.json()
            assert list(body) == ["data", "pageCount", "itemCount", "pages"]
            assert body["itemCount"] == n and body["pageCount"] == pages
            assert [b["height"] for b in body["data"]] == heights[(page - 1) * size : page * size]
            assert all(set(b) == {"blockHash", "parentHash", "timestamp", "eraId", "proposer", "state", "height"}
                       for b in body["data"])  # fmt: skip
            assert [p["number"] for p in body["pages"]] == _express_pages(page, pages)
            for link in body["pages"]:
                url = urlsplit(link["url"])
                assert url.path == casper_api.url("/blocks")
                # the client's own parameters, in its order, with page and limit set as the middleware left them
                assert parse_qsl(url.query) == [(k, str(link["number"]) if k == "page" else str(v))
                                                for k, v in (params | {"limit": size}).items()]  # fmt: skip


def test_the_seeds_link_spelling_and_lenient_page(casper_api: CasperApi) -> None:
    _fill_blocks(casper_api, 3)
    r = casper_api.client.get(casper_api.url("/blocks"), headers=casper_api.owner)
    assert r.content.endswith(b'"pageCount":1,"itemCount":3,"pages":[{"number":1,'
                              b'"url":"/v1/casper/cspr/blocks?page=1&limit=10"}]}')  # fmt: skip
    r = casper_api.client.get(casper_api.url("/blocks?limit=2"), headers=casper_api.owner)
    assert [p["url"] for p in r.json()["pages"]] == ["/v1/casper/cspr/blocks?limit=2&page=1",
                                                     "/v1/casper/cspr/blocks?limit=2&page=2"]  # fmt: skip
    # express-paginate: parseInt, a page below 1 is 1, a limit above 20 is 20
    for query, page, size in (("page=abc", 1, 10), ("page=2abc&limit=1", 2, 1), ("page=-4", 1, 10),
                              ("page=0", 1, 10), ("limit=500", 1, 20), ("page=1&page=2", 1, 10)):  # fmt: skip
        r = casper_api.client.get(casper_api.url(f"/blocks?{query}"), headers=casper_api.owner)
        assert r.status_code == 200, (query, r.text)
        assert len(r.json()["data"]) == min(size, 3 - (page - 1) * size), query
    # where the seed divided by zero or would overflow: a clear 400
    for query in ("limit=0", "limit=abc", "limit=-3", "page=99999999999999999999999999999999999999999"):
        r = casper_api.client.get(casper_api.url(f"/blocks?{query}"), headers=casper_api.owner)
        assert r.status_code == 400 and r.text.startswith("Bad Request: "), (query, r.text)


def test_account_deploys_newest_block_first_in_the_envelope(casper_api: CasperApi) -> None:
    account, stranger = key66(1), key66(2)
    payloads, expected = [], []
    for i in range(13):
        block = hex64("block", 500 + i)
        payloads.append(block_copy(500 + i, era=1, ts_ms=1_700_000_000_000 + i, proposer=key66(9),
                                   deploys=[hex64("deploy", i)]))  # fmt: skip
        payloads.append(processed_copy(hex64("deploy", i), account, block, ts_ms=1_700_000_000_000 + i, cost=i + 1))
        expected.append(hex64("deploy", i))
    payloads.append(processed_copy(hex64("deploy", "x"), stranger, hex64("block", 500), ts_ms=1_700_000_000_000))
    casper_api.write(payloads)
    r = casper_api.get(f"/accountDeploys/{account}", page=2, limit=5)
    body = r.json()
    assert (body["itemCount"], body["pageCount"]) == (13, 3)
    assert [d["deployHash"] for d in body["data"]] == expected[::-1][5:10]
    assert body["data"][0] == {"deployHash": expected[7], "account": account, "state": "processed", "cost": 8,
                               "errorMessage": None, "blockHash": hex64("block", 507)}  # fmt: skip
    assert [p["number"] for p in body["pages"]] == [1, 2, 3]
    empty = casper_api.get(f"/accountDeploys/{key66(3)}").json()
    assert empty == {"data": [], "pageCount": 0, "itemCount": 0, "pages": []}
    assert casper_api.get("/accountDeploys/nothex").status_code == 400


def test_account_deploys_of_every_state_and_the_state_filter(casper_api: CasperApi) -> None:
    account = key66(5)
    block = hex64("block", 900)
    casper_api.write([
        block_copy(900, era=3, ts_ms=1_700_000_900_000, proposer=key66(9)),
        accepted_copy(hex64("ok"), account, ts_ms=1_700_000_000_000),
        processed_copy(hex64("ok"), account, block, ts_ms=1_700_000_000_000),
        processed_copy(hex64("bad"), account, block, ts_ms=1_700_000_001_000, failed=True),
        accepted_copy(hex64("waiting"), account, ts_ms=1_700_000_002_000),
        accepted_copy(hex64("late"), account, ts_ms=1_700_000_003_000), expired_copy(hex64("late")),
    ])  # fmt: skip
    states = {d["deployHash"]: d["state"] for d in casper_api.get(f"/accountDeploys/{account}").json()["data"]}
    assert states == {hex64("ok"): "processed", hex64("bad"): "processed", hex64("waiting"): "accepted",
                      hex64("late"): "expired"}  # fmt: skip

    def only(**params: Any) -> set[str]:
        r = casper_api.get(f"/accountDeploys/{account}", **params)
        assert r.status_code == 200, r.text
        return {d["deployHash"] for d in r.json()["data"]}

    assert only(state="failed") == {hex64("bad")}
    assert only(state="processed") == {hex64("ok"), hex64("bad")}
    assert only(state="accepted,expired") == {hex64("waiting"), hex64("late")}
    assert only(**{"from": "2023-11-14T22:13:21Z"}) == {hex64("bad"), hex64("waiting"), hex64("late")}
    assert only(**{"from": "2023-11-14T22:13:21Z", "to": "2023-11-14T22:13:23Z"}) == {hex64("bad"), hex64("waiting")}
    assert casper_api.get(f"/accountDeploys/{account}", state="lost").status_code == 400


def test_a_network_with_nothing_stored_is_empty(casper_api: CasperApi) -> None:
    assert casper_api.get("/blocks").json() == {"data": [], "pageCount": 0, "itemCount": 0, "pages": []}
    assert casper_api.get(f"/block/{'ab' * 32}").text == "Block not found."
    assert json.loads(casper_api.get("/blocks", cursor="").content) == {"data": [], "next_cursor": None}


def test_the_seed_json_of_a_new_entity_is_the_rest_answer(casper_api: CasperApi) -> None:
    # what the seed's WebSocket channels send ("the same JSON as REST"), built from the decoded event alone
    names = ["sidecar_legacy_fixtures/raw_legacy_block_added.json",
             "sidecar_legacy_fixtures/raw_legacy_deploy_processed.json"]  # fmt: skip
    stored = casper_api.write([data_file(n) for n in names]).stored
    block, deploy = (s.fields for s in stored)
    assert shapes.block_of(block) == casper_api.get(f"/block/{block['block_hash']}").json()
    assert shapes.processed_deploy_of(deploy) == casper_api.get(f"/deploy/{deploy['deploy_hash']}").json()
