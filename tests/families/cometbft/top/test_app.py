"""``bftscope top`` run headless (textual's ``run_test``): the rendered screen as text against stored snapshots, and
the keys. The view is fed the real v0.34 testnet's node0; size and clock are fixed so the render is deterministic.

Snapshots live in ``tests/families/cometbft/top/snapshots/``; after an intended change of the screen, rewrite them
with ``BFTSCOPE_UPDATE_SNAPSHOTS=1 pytest tests/families/cometbft/top/test_app.py`` and review the diff.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from pathlib import Path

from textual.pilot import Pilot

from bftscope.families.cometbft.top.app import TopApp
from bftscope.families.cometbft.top.source import RowBatch
from bftscope.families.cometbft.top.state import TopState
from bftscope.families.cometbft.top.view import SourceStatus, ValidatorLike
from bftscope.families.cometbft.validators.validator import Validator
from tests.families.cometbft.top.conftest import Recorded

SNAPSHOTS = Path(__file__).parent / "snapshots"
SIZE = (110, 36)


class QueueSource:
    """A row source the test drives: batches put on a queue, a status it sets."""

    def __init__(self, rec: Recorded) -> None:
        self.queue: asyncio.Queue[RowBatch | None] = asyncio.Queue()
        self.current = SourceStatus("connected", "v034", "wal:node0")
        self.rec = rec
        self.closed = False

    async def batches(self) -> AsyncIterator[RowBatch]:
        while (batch := await self.queue.get()) is not None:
            self.current = SourceStatus(**{**self.current.__dict__, "frames": self.current.frames + len(batch)})
            yield batch

    def status(self) -> SourceStatus:
        return self.current

    def validators(self) -> Sequence[ValidatorLike]:
        return self.rec.validators

    def names(self) -> Mapping[str, str]:
        return self.rec.names

    def now_ns(self) -> int:
        raise AssertionError("the tests fix the clock")

    async def close(self) -> None:
        self.closed = True
        await self.queue.put(None)


def screen_text(app: TopApp) -> str:
    """The screen as plain text, one line per terminal row, trailing blanks trimmed."""
    strips = app.screen._compositor.render_strips()
    return "\n".join(s.text.rstrip() for s in strips).rstrip() + "\n"


def check_snapshot(name: str, text: str) -> None:
    path = SNAPSHOTS / f"{name}.txt"
    if os.environ.get("BFTSCOPE_UPDATE_SNAPSHOTS") == "1":
        SNAPSHOTS.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"no snapshot {path}: run with BFTSCOPE_UPDATE_SNAPSHOTS=1 to write it"
    assert text == path.read_text(encoding="utf-8")


def _upto(rec: Recorded, height: int, step: str) -> int:
    return next(
        i + 1
        for i, r in enumerate(rec.rows)
        if r["kind"] == "step" and (r["height"], r["round"], r["step"]) == (height, 0, step)
    )


def _run(
    rec: Recorded, upto: int, body: Callable[[TopApp, QueueSource, Pilot[None]], Awaitable[None]], age_s: float = 1.5
) -> None:
    source = QueueSource(rec)
    state = TopState(rec.validators, names=rec.names)
    state.set_status(source.current)
    state.feed(rec.rows[:upto])
    now = rec.rows[upto - 1]["ts"] + int(age_s * 1e9)
    app = TopApp(source, state, clock=lambda: now, refresh_s=3600)  # redraws only when the test asks

    async def go() -> None:
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            await body(app, source, pilot)

    asyncio.run(go())


async def _settle(app: TopApp, pilot: Pilot[None]) -> None:
    await pilot.pause()
    app.redraw()
    await pilot.pause()


def _rows_shown(app: TopApp) -> list[str]:
    """The names in the validator table, top to bottom."""
    view = app.state.view(0)
    names = {v.name for v in view.validators}
    return [line.split()[0] for line in screen_text(app).splitlines() if line.split() and line.split()[0] in names]


def test_screen_at_height_12_precommit(node0: Recorded) -> None:
    async def body(app: TopApp, source: QueueSource, pilot: Pilot[None]) -> None:
        await _settle(app, pilot)
        text = screen_text(app)
        check_snapshot("height12_precommit", text)
        assert "height 12  round 0  precommit  for 1.5 s" in text and "connected" in text

    _run(node0, _upto(node0, 12, "precommit"), body)


def test_pause_freezes_the_body_and_keeps_counting(node0: Recorded) -> None:
    upto = _upto(node0, 12, "precommit")

    async def body(app: TopApp, source: QueueSource, pilot: Pilot[None]) -> None:
        await _settle(app, pilot)
        before = screen_text(app)
        await pilot.press("p")
        more = node0.rows[upto : _upto(node0, 14, "precommit")]
        await source.queue.put(more)
        await _settle(app, pilot)
        paused = screen_text(app)
        assert app.state.view(0).height == 14  # the rows were taken in
        assert f"PAUSED ({len(more):,} frames since)" in paused
        assert paused.splitlines()[2:] == before.splitlines()[2:]  # below the header nothing moved
        check_snapshot("paused", paused)
        await pilot.press("p")
        await _settle(app, pilot)
        resumed = screen_text(app)
        assert "PAUSED" not in resumed and "height 14  round 0  precommit" in resumed

    _run(node0, upto, body)


def test_sort_cycles_and_filter(node0: Recorded) -> None:
    async def body(app: TopApp, source: QueueSource, pilot: Pilot[None]) -> None:
        await _settle(app, pilot)
        view = app.state.view(0)
        by_power = [v.name for v in view.validators]
        assert _rows_shown(app) == by_power
        await pilot.press("s")
        by_address = [v.name for v in sorted(view.validators, key=lambda v: v.address)]
        assert app.sort == "address" and _rows_shown(app) == by_address
        await pilot.press("s")
        slowest = [v.name for v in sorted(view.validators, key=lambda v: -(v.delay_ms or 0))]
        assert app.sort == "delay" and _rows_shown(app) == slowest
        assert slowest[0] == view.slowest[0].name  # the table agrees with the slowest list
        await pilot.press("s")
        assert app.sort == "status"
        shown = _rows_shown(app)
        waiting = [v.name for v in view.validators if v.prevote == "waiting"]  # precommits: all waiting
        assert waiting and shown[: len(waiting)] == sorted(waiting, key=lambda n: next(
            v.address for v in view.validators if v.name == n))  # fmt: skip
        check_snapshot("sort_status", screen_text(app))
        await pilot.press("s")
        assert app.sort == "power"
        await pilot.press("slash", *"node2", "enter")
        assert app.needle == "node2" and _rows_shown(app) == ["node2"]
        assert "Validators 1/4  sort: power  filter: node2" in screen_text(app)
        address = view.validators[0].address
        await pilot.press("slash", "ctrl+u", *address[5:11].lower(), "enter")  # part of an address, any case
        assert _rows_shown(app) == [view.validators[0].name]
        await pilot.press("escape")
        await pilot.press("slash", "escape")
        assert app.needle == "" and _rows_shown(app) == by_power
        await pilot.press("q")
        assert source.closed

    _run(node0, _upto(node0, 12, "precommit"), body)


def test_a_lost_connection_shows_unknown(node0: Recorded) -> None:
    async def body(app: TopApp, source: QueueSource, pilot: Pilot[None]) -> None:
        await _settle(app, pilot)
        assert "waiting" in screen_text(app)
        source.current = SourceStatus("reconnecting", "v034", "wal:node0", reconnects=1, detail="connection reset")
        await _settle(app, pilot)
        text = screen_text(app)
        assert "reconnecting (connection reset)" in text
        assert "waiting" not in text and "unknown" in text and "missing" not in text
        assert "block" in text  # what was seen before the loss stays seen
        view = app.state.view(0)
        assert all(h.rounds == 1 for h in view.recent[1:])  # committed heights were watched whole: still known
        assert view.recent[0].rounds is None
        check_snapshot("reconnecting", text)

    _run(node0, _upto(node0, 12, "precommit"), body)


def test_a_large_set_scrolls(node0: Recorded) -> None:
    extra = [Validator(f"{i:040X}", 1, None, 4 + i) for i in range(146)]  # a 150-validator set: 4 real, 146 silent
    source = QueueSource(node0)
    state = TopState([*node0.validators, *extra], names=node0.names)
    state.set_status(source.current)
    state.feed(node0.rows[: _upto(node0, 12, "precommit")])
    app = TopApp(source, state, clock=lambda: 0, refresh_s=3600)

    async def go() -> None:
        async with app.run_test(size=SIZE) as pilot:
            await _settle(app, pilot)
            text = screen_text(app)
            assert "Validators 150/150" in text and "node3" in text and extra[-1].address not in text
            assert "Recent heights" in text  # the table does not push the rest off the screen
            await pilot.press("end")
            await pilot.pause()
            assert extra[-1].address in screen_text(app)
            assert app.state.view(0).tallies[0].threshold == 101  # 150·2//3 + 1

    asyncio.run(go())


def test_names_are_shown_as_text_never_as_markup(node0: Recorded) -> None:
    hostile = {
        v.address: name for v, name in zip(node0.validators, ["[/x]", "[bold]b", "[link=x]c", "d]"], strict=True)
    }
    source = QueueSource(node0)
    state = TopState(node0.validators, names=hostile)
    state.set_status(source.current)
    state.feed(node0.rows[: _upto(node0, 12, "precommit")])
    app = TopApp(source, state, clock=lambda: 0, refresh_s=3600)

    async def go() -> None:
        async with app.run_test(size=SIZE) as pilot:
            await _settle(app, pilot)
            await pilot.press("slash", *"[/", "enter")
            text = screen_text(app)
            assert "[/x]" in text and "filter: [/" in text and "Validators 1/4" in text

    asyncio.run(go())
