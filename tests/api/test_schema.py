"""Schemathesis over the app's own OpenAPI document: generated requests to every operation never get a 5xx,
and every response matches its declared status codes, content type and schema.

The app runs in local mode (no tokens) over a store holding one processed simulation of the real testnet,
whose ids are offered to the generator as path examples so the metric and event routes are exercised on
data, not only on 404s.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance
from starlette.testclient import TestClient

from bftscope.api.app import create_app
from bftscope.config import Settings
from bftscope.store import DuckDBStore
from tests.api.conftest import tar_gz, wait_processed
from tests.conftest import require_data
from tests.families.casper.api.conftest import NETWORK as CASPER_NETWORK
from tests.families.casper.api.conftest import fill_network


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    testnet = require_data("cometbft/tendermint-v0.34-4node-wal")
    cfg = Settings(data_dir=tmp_path_factory.mktemp("schema"), auth_mode="local", rate_limit_enabled=False,
                   casper_root_network=CASPER_NETWORK)  # fmt: skip
    store = DuckDBStore.open(cfg.store_path, cfg)
    app = create_app(cfg, store=store)
    client = TestClient(app)
    uid = "68ada24ac653f3d9c62b9a1e"
    pid = client.post(f"/v1/users/{uid}/projects", json={"name": "p"}).json()["id"]
    files = [("logfiles", ("node0.tar.gz", tar_gz(testnet / "node0", "node0"), "application/gzip")),
             ("logfiles", ("node1.tar.gz", tar_gz(testnet / "node1", "node1"), "application/gzip"))]  # fmt: skip
    sid = client.post(f"/v1/users/{uid}/projects/{pid}/simulations", data={"name": "s"}, files=files).json()["id"]
    assert wait_processed(client, sid, {})["status"] == "processed"
    ids = {"userId": uid, "projectId": pid, "id": sid, "otherId": sid} | fill_network(store, uid, CASPER_NETWORK)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)

    @schema.hook
    def map_path_parameters(ctx: Any, path_parameters: dict[str, Any] | None) -> dict[str, Any] | None:
        # half the time use the real ids, so routes answer with data rather than 404
        if path_parameters and hash(tuple(sorted(path_parameters.items()))) % 2:
            return {k: ids.get(k, v) for k, v in path_parameters.items()}
        return path_parameters

    yield schema
    app.state.ctx.jobs.wait()
    store.close()


def test_api_conforms_to_its_schema(api_schema: Any) -> None:
    """Every operation but DELETE (which would starve the others of the fixture's data) and the event streams,
    30 examples each."""
    checked = []
    for result in api_schema.get_all_operations():
        operation = result.ok()
        if operation.method.upper() == "DELETE":
            continue
        ok = operation.definition.raw.get("responses", {}).get("200", {}).get("content", {})
        if "text/event-stream" in ok:
            continue  # an endless stream cannot be validated as one response (tests/families/casper/test_sse.py)

        @given(case=operation.as_strategy())
        @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def run(case: Any) -> None:
            # Every check but "valid data is accepted": query strings are free text in the schema because the
            # original's clients rely on lenient parsing (limit=abc → the default), so a 400 there is right.
            case.call_and_validate(excluded_checks=[positive_data_acceptance])

        run()
        checked.append(operation.label)
    assert len(checked) >= 30, checked


def test_openapi_declares_every_route(api_schema: Any, tmp_path: Path) -> None:
    paths = set(api_schema.raw_schema["paths"])
    for p in ("/v1/users", "/v1/users/{userId}", "/v1/users/{userId}/projects", "/v1/projects/{projectId}",
              "/v1/users/{userId}/projects/{projectId}/simulations", "/v1/users/{userId}/simulations",
              "/v1/projects/{projectId}/simulations", "/v1/simulations/{id}", "/v1/simulations/{id}/upload",
              "/v1/simulations/{id}/process", "/v1/simulations/{id}/events",
              "/v1/simulations/{id}/metrics/latency/votes", "/v1/simulations/{id}/metrics/latency/pairwise",
              "/v1/simulations/{id}/metrics/latency/timeseries", "/v1/simulations/{id}/metrics/latency/stats",
              "/v1/simulations/{id}/metrics/messages/success_rate", "/v1/simulations/{id}/metrics/latency/end_to_end",
              "/v1/simulations/{id}/metrics/vote/statistics", "/v1/simulations/{id}/metrics/network/latency/stats",
              "/v1/simulations/{id}/metrics/network/latency/node-stats",
              "/v1/simulations/{id}/metrics/network/latency/overview", "/healthz", "/readyz", "/metrics",
              "/v1/casper/{network}/blocks", "/v1/casper/{network}/block/{blockHash}",
              "/v1/casper/{network}/accountDeploys/{account}", "/v1/casper/{network}/sidecar/deploy/{deployHash}",
              "/blocks", "/deploy/{deployHash}", "/sidecar/block/{hashOrHeight}"):  # fmt: skip
        assert p in paths, p
