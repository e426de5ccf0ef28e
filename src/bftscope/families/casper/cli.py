"""The Casper family's commands: ``bftscope casper …`` (a sub-app) — ``replay``. Following Casper nodes is
``bftscope watch NAME --casper URL`` (the one ``watch`` command of every chain)."""

from __future__ import annotations

import typer

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    from bftscope.families.casper.replay.cli import register as register_replay

    casper = typer.Typer(help="Casper: serve a node's SSE streams from recordings or a generated network.",
                         no_args_is_help=True)  # fmt: skip
    register_replay(casper)
    app.add_typer(casper, name="casper")
