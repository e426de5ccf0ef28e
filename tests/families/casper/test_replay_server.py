"""The replayed Casper node: a node's HTTP rules (start_from validation, paths, /status), the ApiVersion handshake,
buffered then live events, keep-alives, seeded drops; and every real payload served with random splits,
batches and CRLF decodes to exactly the events of the unsplit stream."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from bftscope.cli import app
from bftscope.families.casper.decoder import event_type
from bftscope.families.casper.model import CHANNELS
from bftscope.families.casper.replay.server import BAD_PATH, BAD_QUERY, ReplayNode
from bftscope.families.casper.replay.wire import Wire
from bftscope.families.casper.synthetic import generate
from bftscope.sources.sse import SSEParser
from tests.conftest import REPO
from tests.families.casper.sse_client import END, decoded, read_until, real_payloads


def _sig(i: int) -> bytes:
    body = {"block_hash": "ab", "era_id": 1, "signature": "01", "public_key": f"k{i}"}
    return json.dumps({"FinalitySignature": body}, separators=(",", ":")).encode()


def _expired(i: int) -> bytes:
    return b'{"DeployExpired":{"deploy_hash":"d%d"}}' % i


async def _get(url: str) -> httpx.Response:
    async with httpx.AsyncClient() as c:
        return await c.get(url, timeout=10)


@pytest.mark.parametrize("query", ["start_from=x", "start_from=-1", "start_from=4294967296", "start_from=1&x=2",
                                   "start_from=1&start_from=2", "from=1", "start_from=", "start_from=1.5"])  # fmt: skip
def test_a_query_the_node_refuses_is_422_with_its_text(query: str) -> None:
    async def main() -> httpx.Response:
        async with ReplayNode([_sig(0)]) as node:
            return await _get(f"{node.url}/events/main?{query}")

    r = asyncio.run(main())
    assert (r.status_code, r.text) == (422, BAD_QUERY)


def test_unknown_paths_are_404_and_status_answers_like_a_node() -> None:
    async def main() -> tuple[httpx.Response, httpx.Response, httpx.Response]:
        async with ReplayNode([_sig(0)], api_version="1.5.6") as node:
            return (await _get(f"{node.url}/events/blocks"), await _get(f"{node.url}/"),
                    await _get(f"{node.url}/status"))  # fmt: skip

    bad, root, status = asyncio.run(main())
    assert (bad.status_code, bad.text) == (404, BAD_PATH) and (root.status_code, root.text) == (404, BAD_PATH)
    doc = status.json()
    assert doc["api_version"] == "1.5.6" and doc["build_version"].startswith("1.5.6-")


def _frames(raw: bytes) -> list[tuple[bytes, str | None]]:
    return [(f.data, f.id) for f in SSEParser().feed(raw)]


async def _read_raw(url: str, until: bytes) -> bytes:
    body = b""
    async with httpx.AsyncClient() as c, c.stream("GET", url, timeout=10) as r:
        assert r.status_code == 200 and r.headers["content-type"] == "text/event-stream"
        async for chunk in r.aiter_bytes():
            body += chunk
            if until in body:
                return body
    return body


def test_api_version_first_without_id_then_the_buffer_from_start_from_then_live_events() -> None:
    events = [_sig(0), _expired(1), _sig(2), _sig(3), _expired(4), _sig(5)]

    async def main() -> tuple[bytes, bytes, bytes]:
        async with ReplayNode(events, first_id=100, preload=4, wire=Wire(keepalive_s=0.05)) as node:
            sigs = await _read_raw(f"{node.url}/events/sigs?start_from=102", b"k3")
            live = asyncio.create_task(_read_raw(f"{node.url}/events/main", b"d4"))
            while node.responses[200] < 2:
                await asyncio.sleep(0.01)
            await node.release(2)
            idle = await _read_raw(f"{node.url}/events/deploys", b":\n\n")
            return sigs, await live, idle

    sigs, live, idle = asyncio.run(main())
    assert _frames(sigs) == [(b'{"ApiVersion":"1.5.6"}', None), (_sig(2), "102"), (_sig(3), "103")]
    # without start_from: only what the node emits from then on (not the buffered d1)
    assert _frames(live) == [(b'{"ApiVersion":"1.5.6"}', None), (_expired(4), "104")]
    assert idle.endswith(b":\n\n")  # nothing on the deploys channel: keep-alive comments


def test_start_from_older_than_the_buffer_gives_the_whole_buffer_and_ids_wrap_at_2_32() -> None:
    events = [_sig(i) for i in range(6)] + [END]

    async def main() -> list[tuple[object, ...]]:
        async with ReplayNode(events, first_id=2**32 - 3, buffer_length=5) as node:
            return decoded(await read_until(f"{node.url}/events/sigs", start_from="7"))

    got = asyncio.run(main())
    assert got[0][:3] == ("ApiVersion", "1.5.6", None)
    # 7 is not buffered (ids run 2**32-3 … 3): the whole buffer, its last 5 events (END is the 5th)
    assert [row[2] for row in got[1:]] == [2**32 - 1, 0, 1, 2]
    assert [row[1] for row in got[1:]] == ["ab k2", "ab k3", "ab k4", "ab k5"]


def test_a_connection_is_dropped_after_a_seeded_number_of_events_at_most_max_drops_times() -> None:
    events = [_sig(i) for i in range(40)] + [END]

    async def count(seed: int) -> tuple[list[int], int]:
        lengths = []
        async with ReplayNode(events, wire=Wire(drop_every=5, max_drops=3, seed=seed)) as node:
            for _ in range(4):
                try:
                    await read_until(f"{node.url}/events/sigs")
                    lengths.append(-1)  # reached the end: not dropped
                except Exception:
                    lengths.append(node.drops)
            return lengths, node.drops

    first, again = asyncio.run(count(7)), asyncio.run(count(7))
    assert first == again == ([1, 2, 3, -1], 3)


def test_every_real_payload_split_batched_and_crlf_decodes_as_the_unsplit_stream() -> None:
    payloads = [*real_payloads(), END]
    assert len(payloads) >= 20

    async def read_all(wire: Wire) -> dict[str, list[tuple[object, ...]]]:
        async with ReplayNode(payloads, wire=wire, first_id=21821460) as node:
            return {ch: decoded(await read_until(f"{node.url}/{'events' if ch == 'events' else 'events/' + ch}"))
                    for ch in CHANNELS}  # fmt: skip

    async def main() -> None:
        plain = await read_all(Wire())
        kinds = {row[0] for rows in plain.values() for row in rows}
        assert kinds >= {"BlockAdded", "DeployAccepted", "DeployProcessed", "DeployExpired", "Fault",
                         "FinalitySignature", "Step", "Shutdown", "ApiVersion", "skipped"}  # fmt: skip
        for seed in range(12):
            wire = Wire(split=True, batch=1 + seed % 4, crlf=seed % 2 == 1, seed=seed)
            assert await read_all(wire) == plain, wire

    asyncio.run(main())


def test_the_replay_command_serves_a_generated_node_until_ctrl_c(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "COLUMNS": "200"}
    proc = subprocess.Popen(
        [sys.executable, "-c", "from bftscope.cli import main; main()", "casper", "replay", "--generate", "300",
         "--nodes", "2", "--node", "1", "--listen", "127.0.0.1:0", "--split", "--seed", "3"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        assert proc.stderr is not None
        first = proc.stderr.readline()
        url = re.search(r"(http://127\.0\.0\.1:\d+)/events/main", first)
        assert url is not None, first
        got = asyncio.run(read_until(f"{url[1]}/events/main", end=b'"Shutdown"'))
    finally:
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=30)
    synth = generate(300, nodes=2, seed=3)
    main = [p for p in synth.streams[1] if event_type(p) in CHANNELS["main"]]
    assert [e.raw for e in got if not isinstance(e, bytes) and e.type != "ApiVersion"] == main[:-1]  # up to Shutdown
    assert proc.returncode == 0 and "stopped" in stderr and "Traceback" not in stderr


def test_the_replay_command_refuses_paths_with_generate(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["casper", "replay", str(tmp_path), "--generate", "10"])
    missing = CliRunner().invoke(app, ["casper", "replay"])
    assert result.exit_code == 1 and "not both" in result.output
    assert missing.exit_code == 1 and "--generate N" in missing.output
