"""``bftscope casper replay PATH… | --generate N``: serve one Casper node's SSE streams on HOST:PORT
(docs/casper.md, Replay).

The events are the payloads of the files given — an ``.sse`` transcript's frames, a ``.json`` file's one event,
every such file of a folder — or node ``--node`` of a generated network (``--generate N`` events over
``--nodes`` nodes, :mod:`~bftscope.families.casper.synthetic`). They are served by a
:class:`~bftscope.families.casper.replay.server.ReplayNode`: all buffered at once, or emitted at ``--speed``
events per second, with the wire's cuts (``--split``, ``--batch``, ``--crlf``, ``--drop-every``) seeded.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Annotated

import typer

from bftscope.cli import _fail, err
from bftscope.errors import InputError
from bftscope.families.casper.replay.payloads import read_payloads
from bftscope.live.endpoints import parse_listen

__all__ = ["register"]


_HELP = {
    "generate": "Serve a generated network of at least N events (over --nodes nodes).",
    "speed": "Events per second after the first --preload (0: all at once).",
    "preload": "Events buffered at start when --speed is set.",
    "drop": "Drop a connection after a random number of events, 1..2×N.",
    "keepalive": "Seconds between keep-alive comments of an idle stream.",
}


def _say(message: str) -> None:
    err.print(message, soft_wrap=True, highlight=False, markup=False)


def register(app: typer.Typer) -> None:
    @app.command("replay")
    def replay_cmd(
        paths: Annotated[list[Path] | None, typer.Argument(help=".sse transcripts, .json events, or folders.")] = None,
        generate: Annotated[int | None, typer.Option("--generate", min=1, help=_HELP["generate"])] = None,
        nodes: Annotated[int, typer.Option("--nodes", min=1, max=100, help="Nodes of the generated network.")] = 3,
        node: Annotated[int, typer.Option("--node", min=0, help="Which generated node to serve (0-based).")] = 0,
        listen: Annotated[str, typer.Option("--listen", help="HOST:PORT to serve on.")] = "127.0.0.1:9999",
        speed: Annotated[float, typer.Option("--speed", min=0.0, help=_HELP["speed"])] = 0.0,
        preload: Annotated[int, typer.Option("--preload", min=0, help=_HELP["preload"])] = 0,
        split: Annotated[bool, typer.Option("--split", help="Cut every write at random boundaries.")] = False,
        batch: Annotated[int, typer.Option("--batch", min=1, help="Events per write.")] = 1,
        crlf: Annotated[bool, typer.Option("--crlf", help="CRLF line ends.")] = False,
        drop_every: Annotated[int | None, typer.Option("--drop-every", min=1, help=_HELP["drop"])] = None,
        max_drops: Annotated[int | None, typer.Option("--max-drops", min=0, help="Drops at most.")] = None,
        keepalive: Annotated[float, typer.Option("--keepalive", min=0.01, help=_HELP["keepalive"])] = 15.0,
        api_version: Annotated[str, typer.Option("--api-version", help="The ApiVersion the node announces.")] = "1.5.6",
        seed: Annotated[int, typer.Option("--seed", help="Seed of the generated network and of the cuts.")] = 0,
    ) -> None:
        """Serve one Casper node's SSE event streams (/events/main, /events/deploys, /events/sigs, /events)."""
        from bftscope.families.casper.replay.server import ReplayNode
        from bftscope.families.casper.replay.wire import Wire
        from bftscope.families.casper.synthetic import generate as make

        try:
            host, port = parse_listen(listen)
            first_id = 0
            if generate is not None:
                if paths:
                    raise InputError("give PATH… or --generate N, not both")
                if node >= nodes:
                    raise InputError(f"--node {node}: the generated network has nodes 0..{nodes - 1}")
                synth = make(generate, nodes=nodes, seed=seed)
                payloads, first_id = synth.streams[node], synth.first_ids[node]
            elif paths:
                payloads = read_payloads(paths)
            else:
                raise InputError("give PATH… (.sse transcripts, .json events) or --generate N")
        except InputError as exc:
            raise _fail(exc) from exc
        wire = Wire(batch=batch, split=split, crlf=crlf, drop_every=drop_every, max_drops=max_drops,
                    keepalive_s=keepalive, seed=seed)  # fmt: skip
        server = ReplayNode(payloads, wire=wire, api_version=api_version, first_id=first_id,
                            preload=preload if speed > 0 else None, rate=speed or None)  # fmt: skip

        async def serve() -> None:
            await server.start(host, port)
            _say(f"casper replay: {len(payloads):,} events on {server.url}/events/main, /events/deploys, /events/sigs "
                 f"and /events; Ctrl-C to stop")  # fmt: skip
            try:
                await asyncio.Event().wait()
            finally:
                await server.close()
                _say(f"casper replay: stopped ({server.connections} connections, {server.drops} dropped)")

        try:
            with contextlib.suppress(KeyboardInterrupt):
                asyncio.run(serve())
        except OSError as exc:
            raise _fail(InputError(f"cannot listen on {listen}: {exc}")) from exc
