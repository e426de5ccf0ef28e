"""``bftscope replay PATH… --listen HOST:PORT``: serve one recorded node as a CometBFT RPC (docs/live.md, Replay)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path
from typing import Annotated

import typer

from bftscope.cli import _fail, err
from bftscope.errors import InputError
from bftscope.live.endpoints import parse_listen

__all__ = ["parse_listen", "register"]

_PROGRESS_EVERY_S = 5.0


def _say(message: str) -> None:
    err.print(message, soft_wrap=True, highlight=False, markup=False)


async def _serve(server: object, at_end: str) -> None:
    from bftscope.families.cometbft.replay.server import ReplayServer

    assert isinstance(server, ReplayServer)
    async with server as srv:
        player = srv.player
        assert player is not None
        _say(f"replay: node {srv.timeline.node!r} at {srv.url} (websocket {srv.ws_url}), speed {srv.speed:g}x")
        last = 0.0
        serving = asyncio.ensure_future(srv.serve_until_closed())
        stopped = True
        while not serving.done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(serving), 0.5)
            now = time.monotonic()
            if player.finished.is_set():
                _say(f"replay: end of the recording at height {player.latest_height} ({player.fired} events)")
                stopped = False
                if at_end == "exit":
                    break
                _say("replay: holding the last state; Ctrl-C to stop")
                await serving
                break
            if now - last >= _PROGRESS_EVERY_S:
                last = now
                lap = f", lap {player.lap + 1}" if player.loop else f" of {len(srv.timeline.events)}"
                _say(f"replay: height {player.latest_height}, {player.fired} events{lap}, "
                     f"{len(srv.connections)} websocket client(s)")  # fmt: skip
        if stopped:
            _say(f"replay: stopped at height {player.latest_height} ({player.fired} events served)")


def register(app: typer.Typer) -> None:
    @app.command("replay")
    def replay_cmd(
        paths: Annotated[list[Path], typer.Argument(help="Node home(s), WAL/log files or a testnet folder.")],
        listen: Annotated[str, typer.Option("--listen", help="HOST:PORT to serve the RPC on.")] = "127.0.0.1:26657",
        node: Annotated[str | None, typer.Option("--node", help="Which node, when the paths hold several.")] = None,
        speed: Annotated[float, typer.Option("--speed", min=0.001, help="Recorded seconds per real second.")] = 1.0,
        drop_validator: Annotated[
            str | None, typer.Option("--drop-validator", help="Never show this validator's votes (address).")
        ] = None,
        fail: Annotated[
            list[str] | None, typer.Option("--fail", help="Answer this method with an error, e.g. validators.")
        ] = None,
        at_end: Annotated[
            str,
            typer.Option(
                "--at-end", help="At the end: 'hold' the last state, 'exit', or 'loop' (again, heights growing)."
            ),
        ] = "hold",
        wait: Annotated[
            bool, typer.Option("--wait", help="Start the clock at the first websocket subscribe, not at once.")
        ] = False,
    ) -> None:
        """Serve one recorded node (WAL and/or logs + genesis.json) as a CometBFT RPC, at real speed or faster."""
        from bftscope.families.cometbft.replay.recording import read_recording
        from bftscope.families.cometbft.replay.server import ReplayServer
        from bftscope.families.cometbft.replay.timeline import build_timeline

        if at_end not in ("hold", "exit", "loop"):
            raise _fail(InputError(f"--at-end {at_end!r}: expected 'hold', 'exit' or 'loop'"))
        try:
            host, port = parse_listen(listen)
            recording = read_recording(paths, node)
            timeline = build_timeline(recording, drop_validator=drop_validator)
            server = ReplayServer(timeline, host=host, port=port, speed=speed, loop=at_end == "loop",
                                  autostart=not wait, start_on_subscribe=wait, fail=fail or ())  # fmt: skip
        except InputError as exc:
            raise _fail(exc) from exc
        except ValueError as exc:
            raise _fail(InputError(str(exc))) from exc
        kinds: dict[str, int] = {}
        for e in timeline.events:
            kinds[e.kind] = kinds.get(e.kind, 0) + 1
        _say(
            f"replay: {timeline.node}: {len(timeline.blocks)} blocks, "
            + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
        )
        for reason, n in sorted(timeline.skipped.items()):
            _say(f"replay: not served: {n} × {reason}")
        try:
            asyncio.run(_serve(server, at_end))
        except OSError as exc:
            raise _fail(InputError(f"cannot listen on {listen}: {exc.strerror or exc}")) from exc
        except KeyboardInterrupt:
            _say("replay: stopped")
