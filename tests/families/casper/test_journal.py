"""The write journal: records survive a reopen, applied ones go, a torn last record is cut off and counted,
damage elsewhere is kept aside and reported, never deleted (docs/casper.md "Journal")."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from bftscope.families.casper.journal import Journal
from bftscope.families.casper.rows import LOG_SCHEMA, Decided, encode_record, encode_tables, record_tables, tables_of
from tests.families.casper.gen import chain


def _records(j: Journal) -> list[tuple[int, bytes]]:
    return list(j.pending())


def test_records_survive_a_reopen_and_applied_ones_are_gone(tmp_path: Path) -> None:
    j = Journal(tmp_path / "j")
    assert [j.append(b"one"), j.append(b"two"), j.append(b"three")] == [1, 2, 3]
    j.close()
    again = Journal(tmp_path / "j", applied=1)
    assert _records(again) == [(2, b"two"), (3, b"three")] and again.report.pending == 2
    again.applied(3)
    assert not list((tmp_path / "j").glob("*.journal"))  # all applied: nothing kept
    assert again.append(b"four") == 4  # the sequence goes on
    again.close()
    third = Journal(tmp_path / "j", applied=3)
    assert _records(third) == [(4, b"four")]
    third.close()


def test_an_empty_journal_starts_after_the_last_applied_record(tmp_path: Path) -> None:
    j = Journal(tmp_path / "j", applied=41)
    assert j.append(b"x") == 42
    j.close()


@pytest.mark.parametrize("cut", [1, 7, 20, 23])  # inside the header, inside the payload, the last byte
def test_a_torn_last_record_is_cut_off_and_counted(tmp_path: Path, cut: int) -> None:
    j = Journal(tmp_path / "j")
    j.append(b"kept")
    j.append(b"torn-record")
    j.close()
    (path,) = (tmp_path / "j").glob("*.journal")
    size = path.stat().st_size
    with path.open("r+b") as f:
        f.truncate(size - cut)  # a crash in the middle of the second append
    again = Journal(tmp_path / "j")
    assert _records(again) == [(1, b"kept")]
    assert again.report.torn_bytes == 20 + len(b"torn-record") - cut
    assert again.append(b"next") == 2  # appended after the cut, readable
    again.close()
    third = Journal(tmp_path / "j")
    assert _records(third) == [(1, b"kept"), (2, b"next")]
    third.close()


def test_damage_in_an_older_file_is_kept_aside_and_reported(tmp_path: Path) -> None:
    j = Journal(tmp_path / "j", segment_bytes=64)  # a new file every couple of records
    for i in range(6):
        j.append(b"record-%02d-" % i + b"x" * 30)
    j.close()
    files = sorted((tmp_path / "j").glob("*.journal"))
    assert len(files) >= 3
    data = bytearray(files[0].read_bytes())
    data[-3] ^= 0xFF  # a flipped byte in the first file's last payload: its checksum fails
    files[0].write_bytes(bytes(data))
    again = Journal(tmp_path / "j")
    assert again.report.corrupt_files == 1
    assert files[0].with_suffix(".corrupt").exists()  # kept for inspection, never deleted
    # the whole records before the damage and every later file are still applied; only the damaged one is not
    assert [s for s, _ in _records(again)] == [1, 3, 4, 5, 6]
    again.close()


def test_random_bytes_in_a_journal_file_never_raise(tmp_path: Path) -> None:
    (tmp_path / "j").mkdir()
    (tmp_path / "j" / f"{1:020d}.journal").write_bytes(b"\x00garbage" * 50)
    j = Journal(tmp_path / "j")
    assert _records(j) == [] and j.report.torn_bytes == 400
    j.close()


def test_one_writer_at_a_time_the_next_waits_for_the_first_to_close(tmp_path: Path) -> None:
    from bftscope.errors import StoreError

    first = Journal(tmp_path / "j")
    first.append(b"a")
    with pytest.raises(StoreError, match="in use by another writer"):
        Journal(tmp_path / "j", wait_s=0.2)
    first.close()
    second = Journal(tmp_path / "j", wait_s=0.2)  # the first closed: the lock is free
    assert _records(second) == [(1, b"a")]
    second.close()


def test_a_decided_batch_round_trips_through_a_record() -> None:
    events = chain(1, 3, deploys=2, sigs=2)
    decided = Decided(41, events, [0, 2, 5])  # three of them new entities, out_ids 41, 42, 43
    back = record_tables(encode_record(decided))
    want = tables_of(decided)
    assert sorted(back) == sorted(want) and all(back[t].equals(want[t]) for t in want)
    log = back["casper_event_log"].to_pylist()
    assert [r["out_id"] for r in log] == [41, None, 42, None, None, 43] + [None] * (len(events) - 6)
    assert back["casper_payloads"].column("out_id").to_pylist() == [41, 42, 43]
    with pytest.raises(ValueError, match="not a journal record"):
        record_tables(encode_record(decided)[:-5])  # cut short


def test_a_record_of_arrow_rows_left_by_an_earlier_version_is_still_read() -> None:
    log = pa.table([["n1:1"], ["main"], [7], ["BlockAdded"], ["ab"], [123], [None]], schema=LOG_SCHEMA)
    back = record_tables(encode_tables({"casper_event_log": log}))
    assert list(back) == ["casper_event_log"] and back["casper_event_log"].equals(log)
    with pytest.raises(ValueError, match="not a journal record"):
        record_tables(b"\x05\x00users" + b"\x00" * 8)  # a table that is not the Casper store's
    with pytest.raises(ValueError, match="not a journal record"):
        record_tables(b"\xff")
