"""The casper-sidecar's routes: the events its USAGE samples came from, stored through the decoder, give back
exactly those samples (same keys, same raw payload bytes); its error JSON for what is not found or malformed."""

from __future__ import annotations

import json

from tests.families.casper.api.conftest import CasperApi, data_file, inner_of, tagged

LATEST, BY_HASH, BY_HEIGHT = ("sidecar_USAGE_rest_01_latest_block.json", "sidecar_USAGE_rest_02_block_by_hash.json",
                              "sidecar_USAGE_rest_03_block_by_height.json")  # fmt: skip
ACCEPTED_ONLY, AGGREGATE = ("sidecar_USAGE_rest_04_deploy_aggregate_accepted_only.json",
                            "sidecar_USAGE_rest_05_deploy_aggregate_processed.json")  # fmt: skip
ACCEPTED, PROCESSED = "sidecar_USAGE_rest_06_deploy_accepted.json", "sidecar_USAGE_rest_07_deploy_processed.json"
NOT_FOUND = {"code": 404, "message": "Query returned no results"}


def test_blocks_latest_by_hash_and_by_height(casper_api: CasperApi) -> None:
    casper_api.write([tagged("BlockAdded", data_file(LATEST))])
    r = casper_api.get("/sidecar/block")
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    assert r.content == data_file(LATEST).strip()  # the node's bytes, as the sidecar's sample shows them
    casper_api.write([tagged("BlockAdded", data_file(BY_HASH))])
    sample = inner_of(BY_HASH)
    assert casper_api.get(f"/sidecar/block/{sample['block_hash']}").content == data_file(BY_HASH).strip()
    height = sample["block"]["header"]["height"]
    assert casper_api.get(f"/sidecar/block/{height}").content == data_file(BY_HEIGHT).strip()
    assert casper_api.get("/sidecar/block").content == data_file(BY_HASH).strip()  # now the greatest height


def test_the_deploy_aggregate_as_it_grows(casper_api: CasperApi) -> None:
    h = inner_of(ACCEPTED)["hash"]
    assert casper_api.get(f"/sidecar/deploy/{h}").json() == NOT_FOUND
    casper_api.write([tagged("DeployAccepted", data_file(ACCEPTED))])
    only = casper_api.get(f"/sidecar/deploy/{h}")
    # The sample (USAGE.md) shows "deploy_processed":{}; the sidecar's code sends null (an Option), and so do we:
    # an empty object is truthy in the JavaScript clients that test it.
    assert json.loads(data_file(ACCEPTED_ONLY))["deploy_processed"] == {}
    expected = data_file(ACCEPTED_ONLY).strip().replace(b'"deploy_processed":{}', b'"deploy_processed":null')
    assert only.content == expected
    casper_api.write([tagged("DeployProcessed", data_file(PROCESSED))])
    assert casper_api.get(f"/sidecar/deploy/{h}").content == data_file(AGGREGATE).strip()
    assert casper_api.get(f"/sidecar/deploy/accepted/{h}").content == data_file(ACCEPTED).strip()
    assert casper_api.get(f"/sidecar/deploy/processed/{h}").content == data_file(PROCESSED).strip()
    assert casper_api.get(f"/sidecar/deploy/expired/{h}").json() == NOT_FOUND
    casper_api.write([tagged("DeployExpired", json.dumps({"deploy_hash": h}).encode())])
    assert casper_api.get(f"/sidecar/deploy/expired/{h}").json() == {"deploy_hash": h}
    assert casper_api.get(f"/sidecar/deploy/{h}").json()["deploy_expired"] is True


def test_faults_signatures_and_steps_are_the_raw_payloads(casper_api: CasperApi) -> None:
    names = ["casper-docs_node-events_Fault.json", "sidecar_legacy_fixtures/raw_legacy_fault.json",
             "casper-docs_node-events_FinalitySignature.json",
             "sidecar_legacy_fixtures/raw_legacy_finality_signature.json", "casper-docs_node-events_Step.json"]
    casper_api.write([data_file(n) for n in names])
    for name in names[:2]:
        fault = inner_of(name)
        for key in (fault["public_key"], str(fault["era_id"])):
            r = casper_api.get(f"/sidecar/faults/{key}")
            assert r.status_code == 200, r.text
            assert r.json() == [fault]
            # the node's own bytes inside the array: these samples are pretty-printed, and stay so
            assert b'"public_key": "' + fault["public_key"].encode() + b'"' in r.content
    for name in names[2:4]:
        sig = inner_of(name)
        assert casper_api.get(f"/sidecar/signatures/{sig['block_hash']}").json() == [sig]
    step = inner_of(names[4])
    r = casper_api.get(f"/sidecar/step/{step['era_id']}")
    assert r.json() == step
    assert step["execution_effect"]["transforms"][0]["key"].encode() in r.content


def test_the_sidecars_errors(casper_api: CasperApi) -> None:
    assert casper_api.get("/sidecar/block").json() == NOT_FOUND
    assert casper_api.get(f"/sidecar/block/{'ab' * 32}").json() == NOT_FOUND
    assert casper_api.get("/sidecar/block/12").json() == NOT_FOUND
    assert casper_api.get(f"/sidecar/block/{2**64 - 1}").json() == NOT_FOUND  # a u64 past the 64-bit column
    for path in ("/sidecar/block/xyz", f"/sidecar/block/{2**64}", "/sidecar/deploy/abc",
                 "/sidecar/deploy/accepted/abc", "/sidecar/signatures/abc"):  # fmt: skip
        r = casper_api.get(path)
        bad = path.rsplit("/", 1)[1]
        assert r.status_code == 400
        assert r.json() == {"code": 400, "message": "Invalid parameter in query: Expected hex-encoded hash (64 chars), "
                                                    f"received: {bad} (length: {len(bad)})"}  # fmt: skip
    r = casper_api.get("/sidecar/faults/0abc")
    assert r.json() == {"code": 400, "message": "Invalid parameter in query: Expected hex-encoded public key "
                                                "(66/68 chars), received: 0abc (length: 4)"}  # fmt: skip
    assert casper_api.get("/sidecar/faults/7").json() == NOT_FOUND
    for path in ("/sidecar", "/sidecar/", "/sidecar/other", "/sidecar/step/x", "/sidecar/block/1/2"):
        r = casper_api.get(path)
        assert (r.status_code, r.json()) == (400, {"code": 400, "message": "Invalid request path provided"}), path
