"""The Casper family's commands, under ``bftscope casper``: ``report`` (docs/casper.md "Analytics").

Other Casper commands (``casper replay``) register on the same sub-app: :func:`casper_app` returns it,
creating it the first time, so each part adds its own commands without knowing the others'.
"""

from __future__ import annotations

from typing import Annotated

import typer

from bftscope.analytics.windows import parse_bounds
from bftscope.cli import AsJson, DataDir, _fail, _opened, _print_json, _settings, out
from bftscope.errors import BftscopeError, NotFoundError

__all__ = ["casper_app", "register", "run_name"]


def casper_app(app: typer.Typer) -> typer.Typer:
    """The ``casper`` sub-app of ``app`` (created on first use)."""
    for group in app.registered_groups:
        if group.name == "casper" and group.typer_instance is not None:
            return group.typer_instance
    sub = typer.Typer(no_args_is_help=True, help="Casper networks: analytics of a followed network.")
    app.add_typer(sub, name="casper")
    return sub


def run_name(network: str) -> str:
    """A followed network's run: ``net:<name>`` (a run name given whole is kept)."""
    return network if network.startswith("net:") else f"net:{network}"


def register(app: typer.Typer) -> None:
    sub = casper_app(app)

    @sub.command("report")
    def report_cmd(
        network: Annotated[str, typer.Argument(help="The followed Casper network (its run is net:NAME).")],
        data_dir: DataDir = None,
        as_json: AsJson = False,
        from_: Annotated[str | None, typer.Option("--from", help="Blocks from this RFC 3339 time.")] = None,
        to: Annotated[str | None, typer.Option("--to", help="Blocks up to this RFC 3339 time.")] = None,
        by_account: Annotated[bool, typer.Option("--by-account", help="Deploy latency per account too.")] = False,
    ) -> None:
        """Block times and eras, proposer share against weight, finality-signature arrival per validator and
        node, deploy latency — over the blocks whose timestamp is in the window (default: all)."""
        from bftscope.families.casper.analytics.report import build_report, render_report
        from bftscope.families.casper.analytics.window import Window

        try:
            window = Window.of(parse_bounds(from_, to))
        except BftscopeError as exc:
            raise _fail(exc) from None
        with _opened(_settings(data_dir)) as store:
            run = store.get_run(run_name(network))
            if run.chain != "casper":
                raise _fail(NotFoundError(f"{run.name} is a {run.chain} run, not a Casper network"))
            report = build_report(store, run.id, window, by_account=by_account)
        if as_json:
            _print_json(report)
            return
        render_report(out, report)
