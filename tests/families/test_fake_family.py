"""A chain family from outside: registered, its files ingested, its events listed and one metric served over
the API — with nothing but this module added (no other package edited for it)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import pyarrow as pa
import pytest
from fastapi import APIRouter
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from bftscope.analytics.summary import run_summary
from bftscope.api.app import create_app
from bftscope.api.deps import Ctx
from bftscope.cli import app as cli_app
from bftscope.config import Settings
from bftscope.families import registry
from bftscope.families.base import Family, Metric, NamedNode
from bftscope.ingest.live import Backoff, LiveRunner, LiveSource, SourceState
from bftscope.ingest.livesink import StoreSink
from bftscope.ingest.parsereport import ParseReport
from bftscope.ingest.pipeline import ingest
from bftscope.model import OBSERVATION_GAP, ROW_SCHEMA
from bftscope.sources.base import Frame, LiveSourceSpec, MockTransport
from bftscope.store import open_store
from bftscope.store.base import Store

MAGIC = b"FAKECHAIN v1\n"


class TickFormat:
    """``FAKECHAIN v1`` then ``node=<name>`` then one ``<ns> tick <height>`` per line."""

    name = "fakechain-ticks"
    splittable = False

    def sniff(self, head: bytes) -> bool:
        return head.startswith(MAGIC)

    def identity(self, stream: BinaryIO, limit_bytes: int) -> NamedNode:
        for line in stream.read(limit_bytes).splitlines():
            if line.startswith(b"node="):
                return NamedNode(line[5:].decode(), ["node= line"])
        return NamedNode()

    def parse(self, stream: BinaryIO, report: ParseReport, *, start: int = 0, end: int | None = None,
              batch_rows: int = 65_536, max_line_bytes: int = 8 * 1024 * 1024) -> Iterator[pa.Table]:  # fmt: skip
        stream.seek(start)
        cols: dict[str, list[Any]] = {f.name: [] for f in ROW_SCHEMA}
        seq = 0
        for line in stream.read().splitlines(keepends=True):
            report.lines += 1
            parts = line.split()
            if len(parts) == 3 and parts[1] == b"tick" and parts[0].isdigit() and parts[2].isdigit():
                for c in cols.values():
                    c.append(None)
                cols["ts"][-1], cols["kind"][-1], cols["height"][-1] = int(parts[0]), "fake_tick", int(parts[2])
                cols["seq"][-1] = seq
                report.events += 1
            elif not line.startswith((b"FAKECHAIN", b"node=")):
                report.skip("not a tick line", line.decode(errors="replace"))
            seq += len(line)
        yield pa.table({f.name: pa.array(cols[f.name], type=f.type) for f in ROW_SCHEMA}, schema=ROW_SCHEMA)


def _tick_count(store: Store, run_id: int, window: Any) -> dict[str, int]:
    rows = store.query("SELECT count(*), max(height) FROM events WHERE run_id = ? AND kind = 'fake_tick'", [run_id])
    return {"ticks": int(rows[0][0]), "top": int(rows[0][1])}


fake_router = APIRouter(prefix="/v1/fakechain")


@fake_router.get("/runs/{name}/ticks")
def ticks(name: str, c: Ctx) -> Any:
    run = c.store.get_run(name)
    return json.loads(FAKE.encode("tick_count", _tick_count(c.store, run.id, None)))


class FakeChain(Family):
    name = "fakechain"
    kinds = ("fake_tick",)
    formats = (TickFormat(),)
    identity_key = "name"

    def rollups(self) -> Mapping[str, Metric]:
        return {"tick_count": _tick_count}

    def routers(self) -> Sequence[APIRouter]:
        return (fake_router,)


FAKE = FakeChain()


@pytest.fixture
def fake_log(tmp_path: Path) -> Path:
    path = tmp_path / "a.ticks"
    path.write_bytes(MAGIC + b"node=alpha\n1000 tick 1\n2000 tick 2\nnonsense\n3000 tick 3\n")
    return path


def test_a_registered_family_is_ingested_listed_and_served(tmp_path: Path, fake_log: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", auth_mode="local", rate_limit_enabled=False)
    with registry.registered(FAKE):
        assert registry.family_of_format("fakechain-ticks") is FAKE
        store = open_store(settings)
        try:
            result = ingest(store, "fake", [fake_log], settings, workers=1)
            assert [f.status for f in result.files] == ["ingested"]
            assert result.files[0].report.skipped == {"not a tick line": 1}
            summary = run_summary(store, "fake")
            assert summary["chain"] == "fakechain" and summary["events_by_kind"] == {"fake_tick": 3}
            assert [n["label"] for n in summary["nodes"]] == ["alpha"]
            # the family's rollup was stored by the chain-neutral engine
            stored = store.query("SELECT name, value FROM rollups WHERE run_id = ?", [result.run_id])
            assert stored == [("tick_count", '{"ticks":3,"top":3}')]
        finally:
            store.close()
        listed = CliRunner().invoke(cli_app, ["events", "fake", "--data-dir", str(settings.data_dir), "--json"])
        assert listed.exit_code == 0, listed.output
        assert [e["kind"] for e in map(json.loads, listed.output.splitlines())] == ["fake_tick"] * 3
        with TestClient(create_app(settings)) as client:
            r = client.get("/v1/fakechain/runs/fake/ticks")
            assert r.status_code == 200 and r.json() == {"ticks": 3, "top": 3}
    assert "fakechain" not in [f.name for f in registry.families()]


class TickDecoder:
    """The family's live decoder: one ``{"ns": …, "height": …}`` JSON frame → one ``fake_tick`` row."""

    def __init__(self) -> None:
        self.report = ParseReport()

    def feed(self, frame: Frame) -> list[dict[str, Any]]:
        self.report.lines += 1
        try:
            doc = json.loads(frame.data)
            row = {"ts": int(doc["ns"]), "kind": "fake_tick", "height": int(doc["height"])}
        except (ValueError, KeyError, TypeError):
            self.report.skip("not a tick frame", frame.data.decode(errors="replace"))
            return []
        self.report.events += 1
        return [row]

    def finish(self) -> list[dict[str, Any]]:
        return []


def test_a_registered_family_follows_a_live_source(tmp_path: Path) -> None:
    """The family's live source, fed by the in-memory transport with its connection cut twice, runs through the
    live runner into the store: every tick once (the transport resumes after the last frame id), the two
    outages stored as observation gaps, the events listed and the family's rollup served over the API."""
    frames = [Frame(json.dumps({"ns": 1000 * h, "height": h}).encode(), id=str(h)) for h in range(1, 9)]
    frames.insert(4, Frame(b"garbage", id="x"))
    transport = MockTransport(frames, cuts=[3, 7])
    spec = LiveSourceSpec("fake-ticks", transport=lambda _endpoint: transport, decoder=TickDecoder)
    settings = Settings(data_dir=tmp_path / "data", auth_mode="local", rate_limit_enabled=False)
    live_family = FakeChain()
    live_family.live_sources = (spec,)
    with registry.registered(live_family):
        store = open_store(settings)
        try:
            decoder = spec.decoder()
            runner = LiveRunner([LiveSource("beta", spec.transport("mem://"), decoder)], StoreSink(store, "live",
                                "fakechain"), backoff=Backoff(base=0.0, cap=0.0))  # fmt: skip

            async def follow() -> None:
                task = asyncio.create_task(runner.run())
                for _ in range(200):
                    if decoder.report.events == 8 and runner.stats["beta"].state == SourceState.LIVE:
                        break
                    await asyncio.sleep(0.01)
                await runner.stop()
                await task

            asyncio.run(follow())
            assert runner.stats["beta"].reconnects == 2 and decoder.report.skipped == {"not a tick frame": 1}
            summary = run_summary(store, "live")
            assert summary["chain"] == "fakechain" and [n["label"] for n in summary["nodes"]] == ["beta"]
            assert summary["events_by_kind"] == {"fake_tick": 8, OBSERVATION_GAP: 2}
            ticks = store.query("SELECT height FROM events WHERE kind = 'fake_tick' ORDER BY ts")
            assert [h for (h,) in ticks] == list(range(1, 9))  # each once, in order, across both cuts
        finally:
            store.close()
        listed = CliRunner().invoke(cli_app, ["events", "live", "--data-dir", str(settings.data_dir), "--json",
                                              "--kind", OBSERVATION_GAP])  # fmt: skip
        assert listed.exit_code == 0, listed.output
        gaps = [json.loads(e["extra"]) for e in map(json.loads, listed.output.splitlines())]
        assert [g["reason"] for g in gaps] == ["connection cut before frame 3 (mock)",
                                               "connection cut before frame 7 (mock)"]  # fmt: skip
        with TestClient(create_app(settings)) as client:
            r = client.get("/v1/fakechain/runs/live/ticks")
            assert r.status_code == 200 and r.json() == {"ticks": 8, "top": 8}
