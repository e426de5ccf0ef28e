"""``bftscope top``: the live terminal view (textual) over a :class:`.source.RowSource` and a :class:`.state.TopState`.

Rows are fed to the state as they come; the screen is redrawn from the state on a timer, at most
``1 / refresh_s`` times a second. Paused, the body keeps the frame it had while the header keeps counting what
arrives (the state is still fed, so nothing is lost). Keys: ``p`` pause/resume, ``s`` cycle the sort, ``/``
filter by address or name, ``escape`` clear the filter, ``q`` quit.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual import on
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Footer, Input, Static

from bftscope.families.cometbft.top.source import RowSource
from bftscope.families.cometbft.top.state import TopState
from bftscope.families.cometbft.top.view import Mark, SourceStatus, Tally, TopView, ValidatorLine

__all__ = ["SORTS", "TopApp", "sorted_lines"]

SORTS = ("power", "address", "delay", "status")
_MARK_STYLE = {"block": "green", "nil": "yellow", "waiting": "dim", "unknown": "magenta"}
_MARK_RANK = {"unknown": 0, "waiting": 1, "nil": 2, "block": 3}
_BAR = 30


def sorted_lines(lines: list[ValidatorLine], sort: str, needle: str) -> list[ValidatorLine]:
    """The validator rows to show: those whose address or name contains ``needle`` (any case), in ``sort`` order.
    ``power`` keeps set order (power descending); ``delay`` puts the slowest first; ``status`` the least
    advanced first (unknown, waiting, nil, block; precommit before prevote)."""
    n = needle.strip().lower()
    shown = [v for v in lines if not n or n in v.address.lower() or n in v.name.lower()]
    if sort == "address":
        return sorted(shown, key=lambda v: v.address)
    if sort == "delay":
        return sorted(shown, key=lambda v: (v.delay_ms is None, -(v.delay_ms or 0.0), v.address))
    if sort == "status":
        return sorted(shown, key=lambda v: (_MARK_RANK[v.precommit], _MARK_RANK[v.prevote], v.address))
    return shown


def _mark(m: Mark) -> Text:
    return Text(m, style=_MARK_STYLE[m])


def _ms(value: float | None) -> str:
    return "?" if value is None else f"{value:,.0f}"


def _bar(t: Tally) -> Text:
    """Seen votes as a bar (block power solid, nil shaded), the +2/3 threshold marked with a bar line."""
    total = max(t.total, 1)
    block = round(_BAR * (t.seen - t.nil) / total)
    nil = round(_BAR * t.seen / total) - block
    cells = ["█"] * block + ["▒"] * nil + ["░"] * (_BAR - block - nil)
    cells.insert(min(_BAR, -(-_BAR * t.threshold // total)), "┃")
    share = 100 * t.seen / total
    text = Text(f"{t.vote_type:<10}")
    text.append("".join(cells), style="green" if t.reached else "yellow")
    text.append(f" {t.seen:,}/{t.total:,} ({share:.0f}%)  block {t.for_block:,}  nil {t.nil:,}  +2/3 = {t.threshold:,}")
    text.append("  reached" if t.reached else "  not reached", style="bold green" if t.reached else "dim")
    return text


class TopApp(App[None]):
    """The view; ``clock`` (Unix ns) drives the step's age — the source's clock unless given."""

    TITLE = "bftscope top"
    AUTO_FOCUS = "#table"  # a large set scrolls (arrows, page keys); the hidden filter box must not take the keys
    ENABLE_COMMAND_PALETTE = False
    CSS = """
    #header { height: 2; }
    #table { height: auto; max-height: 60%; }
    #bars { height: 2; margin: 1 0 0 0; }
    #lower { height: auto; margin: 1 0 0 0; }
    #recent, #slowest { width: 1fr; height: auto; }
    #filter { display: none; }
    #filter.active { display: block; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("p", "pause", "pause/resume"),
        Binding("s", "sort", "sort"),
        Binding("slash", "filter", "filter"),
        Binding("escape", "clear_filter", "clear filter", show=False),
        Binding("q", "quit", "quit"),
    ]

    def __init__(
        self,
        source: RowSource,
        state: TopState | None = None,
        *,
        clock: Callable[[], int] | None = None,
        refresh_s: float = 0.25,
    ) -> None:
        super().__init__()
        self.source = source
        self.state = state or TopState(source.validators(), names=source.names())
        self.clock = clock or source.now_ns
        self.refresh_s = max(refresh_s, 0.2)  # a few frames a second at most
        self.paused = False
        self.sort = SORTS[0]
        self.needle = ""
        self.frozen: TopView | None = None
        self.paused_at_frames = 0
        self.feed_error: str | None = None
        self._validators_seen = source.validators()

    def compose(self) -> ComposeResult:
        yield Static(id="header")
        with VerticalScroll(id="table"):
            yield Static(id="validators")
        yield Static(id="bars")
        with Horizontal(id="lower"):
            yield Static(id="recent")
            yield Static(id="slowest")
        yield Input(placeholder="filter: part of an address or name (enter applies, escape clears)", id="filter")
        yield Footer()

    def on_mount(self) -> None:
        self.run_worker(self._consume(), exclusive=True, group="rows")
        self.set_interval(self.refresh_s, self.redraw)
        self.redraw()

    async def _consume(self) -> None:
        try:
            async for batch in self.source.batches():
                self._sync_validators()
                self.state.set_status(self.source.status())
                self.state.feed(batch)
        except Exception as exc:  # a source failing must not take the view down; the header says why
            self.feed_error = f"{type(exc).__name__}: {exc}"
        self.state.set_status(self.source.status())

    def _sync_validators(self) -> None:
        """A live source learns the set after connecting, and again where it changes: hand each new one over."""
        current = self.source.validators()
        if current is not self._validators_seen:
            self._validators_seen = current
            self.state.set_validators(current)

    # --- keys --------------------------------------------------------------------------------------

    def action_pause(self) -> None:
        self.paused = not self.paused
        if self.paused:
            self.paused_at_frames = self.source.status().frames
        self.redraw()

    def action_sort(self) -> None:
        self.sort = SORTS[(SORTS.index(self.sort) + 1) % len(SORTS)]
        self.redraw()

    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.add_class("active")
        box.value = self.needle
        box.focus()

    def action_clear_filter(self) -> None:
        self.needle = ""
        self._close_filter()

    @on(Input.Submitted, "#filter")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        self.needle = event.value[:100]
        self._close_filter()

    def _close_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.remove_class("active")
        self.set_focus(self.query_one("#table"))
        self.redraw()

    async def action_quit(self) -> None:
        await self.source.close()
        self.exit()

    # --- drawing: names, addresses and the filter come from the network or the user — Text, never markup ---

    def redraw(self) -> None:
        status = self.source.status()
        self._sync_validators()
        self.state.set_status(status)
        if not self.paused or self.frozen is None:
            self.frozen = self.state.view(self.clock())
        view = self.frozen
        self.query_one("#header", Static).update(self._header(view, status))
        self.query_one("#validators", Static).update(self._validators(view))
        self.query_one("#bars", Static).update(Text("\n").join(_bar(t) for t in view.tallies))
        self.query_one("#recent", Static).update(self._recent(view))
        self.query_one("#slowest", Static).update(self._slowest(view))

    def _header(self, view: TopView, status: SourceStatus) -> Text:
        where = f"{status.network or '?'}  {status.endpoint or '?'}"
        pos = (
            f"height {view.height:,}  round {view.round}  {view.step}" if view.height is not None else "height unknown"
        )
        age = f"  for {view.step_age_s:,.1f} s" if view.step_age_s is not None else ""
        text = Text(f"{where}  │  {pos}{age}  │  ")
        text.append(status.connection, style="green" if status.connection == "connected" else "bold red")
        if status.detail:
            text.append(f" ({status.detail})", style="dim")
        line2 = f"\n{status.frames:,} frames  {self.state.rows:,} rows"
        if self.state.skipped:
            line2 += f"  {sum(self.state.skipped.values()):,} skipped"
        if self.feed_error:
            line2 += f"  source failed: {self.feed_error}"
        text.append(line2)
        if self.paused:
            text.append(f"  PAUSED ({status.frames - self.paused_at_frames:,} frames since)", style="bold yellow")
        return text

    def _validators(self, view: TopView) -> Table:
        lines = sorted_lines(view.validators, self.sort, self.needle)
        title = Text(f"Validators {len(lines)}/{len(view.validators)}  sort: {self.sort}")
        if self.needle:
            title.append(f"  filter: {self.needle}")
        t = Table("name", "address", "power", "prevote", "precommit", "delay ms", title=title, title_justify="left",
                  expand=True, box=None, header_style="bold")  # fmt: skip
        for v in lines:
            t.add_row(Text(v.name if v.name != v.address else "-"), Text(v.address), f"{v.power:,}", _mark(v.prevote),
                      _mark(v.precommit), _ms(v.delay_ms))  # fmt: skip
        return t

    def _recent(self, view: TopView) -> Table:
        t = Table("height", "duration ms", "rounds", "proposer", title="Recent heights", title_justify="left",
                  box=None, header_style="bold")  # fmt: skip
        for h in view.recent:
            rounds = "gap" if h.gap else ("?" if h.rounds is None else str(h.rounds))
            t.add_row(f"{h.height:,}", _ms(h.duration_ms), rounds, Text(h.proposer or "?"))
        return t

    def _slowest(self, view: TopView) -> Table:
        t = Table("validator", "median delay ms", "votes", title="Slowest by vote arrival", title_justify="left",
                  box=None, header_style="bold")  # fmt: skip
        for s in view.slowest:
            t.add_row(Text(s.name), _ms(s.delay_ms), f"{s.samples:,}")
        return t
