"""The one watchdog thread behind every query's time limit fires what is due, in deadline order, and nothing
that was cancelled."""

from __future__ import annotations

import threading

from bftscope.store.duckdb.watchdog import Watchdog


def test_due_actions_fire_in_deadline_order_and_cancelled_ones_never() -> None:
    dog = Watchdog()
    fired: list[str] = []
    done = threading.Event()
    late = dog.after(0.30, lambda: (fired.append("late"), done.set()))
    cancelled = dog.after(0.05, lambda: fired.append("cancelled"))
    early = dog.after(0.10, lambda: fired.append("early"))  # earlier than the first: the thread is woken for it
    cancelled.cancel()
    assert done.wait(5)
    assert fired == ["early", "late"]
    assert early.fired.is_set() and late.fired.is_set() and not cancelled.fired.is_set()


def test_a_statement_past_its_limit_is_interrupted(tmp_path: object) -> None:
    import pytest

    from bftscope.config import Settings
    from bftscope.errors import QueryTimeoutError
    from bftscope.store.duckdb import DuckDBStore

    settings = Settings(data_dir=tmp_path, query_timeout_s=0.2)  # type: ignore[arg-type]
    store = DuckDBStore.open(settings.store_path, settings)
    try:
        with pytest.raises(QueryTimeoutError):
            store.query("SELECT count(*) FROM range(10000000000) a, range(10) b WHERE a.range % 7 = b.range")
        assert store.query("SELECT 42") == [(42,)]  # the cursor is usable after the interrupt
    finally:
        store.close()
