"""The ``bftscope top`` command: the live terminal view over a CometBFT RPC endpoint (``[NAME] --rpc URL…``, as
``bftscope watch`` takes it, storing nothing) or over a stored run (``NAME``: an uploaded testnet or a network
recorded by ``bftscope watch``), replayed node by node."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bftscope.cli import DataDir, _fail, _settings
from bftscope.errors import BftscopeError, InputError
from bftscope.families.cometbft.top.source import RowSource

__all__ = ["register"]

MAX_ROWS = 5_000_000  # a stored node replayed is held in memory: past this, ask for --from


def _stored_source(
    name: str, node: str | None, from_height: int | None, speed: float, data_dir: Path | None
) -> RowSource:
    from bftscope.families.cometbft.top.recorded import RecordedSource, live_rows, stored_validators
    from bftscope.families.cometbft.validators.history import set_at
    from bftscope.families.cometbft.validators.validator import Validator
    from bftscope.store import open_store

    store = open_store(_settings(data_dir), read_only=True)
    try:
        run = store.get_run(name)
        nodes = store.nodes(run.id)
        chosen = [n for n in nodes if node is None or node in (n.label, str(n.node), n.moniker)]
        if not chosen:
            known = ", ".join(n.label for n in nodes) or "none"
            raise InputError(f"run {name!r} has no node {node!r} (nodes: {known})")
        observer = chosen[0]
        rows = []
        for row in live_rows(store, run.id, observer.node):
            if from_height is None or (row["height"] is not None and row["height"] >= from_height):
                rows.append(row)
                if len(rows) > MAX_ROWS:
                    raise InputError(f"node {observer.label} of {name!r} has over {MAX_ROWS:,} rows: start later "
                                     "with --from HEIGHT")  # fmt: skip
        first = next((r["height"] for r in rows if r["height"] is not None), 0)
        validators: list[Validator] = set_at(store, run.id, first)
        note = ""
        if not validators:  # no genesis.json was read and no set fetched: the voters, without their power
            validators, note = stored_validators(store, run.id), "voting power not stored: 1 each"
        names = {n.validator: n.label for n in nodes if n.validator}
    finally:
        store.close()
    return RecordedSource(rows, validators, network=name, endpoint=f"stored node {observer.label}", names=names,
                          note=note, speed=speed)  # fmt: skip


def register(app: typer.Typer) -> None:
    @app.command("top")
    def top_cmd(
        name: Annotated[
            str | None, typer.Argument(help="A stored run to replay (uploaded, or watched); with --rpc: the network.")
        ] = None,
        rpc: Annotated[
            list[str] | None, typer.Option("--rpc", help="CometBFT RPC endpoint to follow live (repeatable).")
        ] = None,
        node: Annotated[str | None, typer.Option("--node", help="Stored run: the observing node (label).")] = None,
        from_height: Annotated[
            int | None, typer.Option("--from", min=0, help="Stored run: start at this height.")
        ] = None,
        speed: Annotated[
            float, typer.Option("--speed", min=0.0, help="Stored run: times real pace (0 = as fast as possible).")
        ] = 1.0,
        refresh: Annotated[float, typer.Option("--refresh", min=0.2, help="Seconds between redraws.")] = 0.5,
        data_dir: DataDir = None,
    ) -> None:
        """A live terminal view: height/round/step, each validator's votes, +2/3, recent heights, slowest voters."""
        from bftscope.families.cometbft.top.app import TopApp

        if name is None and not rpc:
            raise _fail(InputError("give a stored run NAME, or --rpc URL to follow a network live"))
        source: RowSource
        try:
            if rpc:
                from bftscope.families.cometbft.top.rpcsource import rpc_source

                source = rpc_source(rpc, name=name)
            else:
                assert name is not None
                source = _stored_source(name, node, from_height, speed, data_dir)
        except BftscopeError as exc:
            raise _fail(exc) from None
        TopApp(source, refresh_s=refresh).run()
