"""Windows never overlap: planning around windows of another length, refusing and replacing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path

import pytest

from scheduler.planner import plan_windows, windows_between
from storage.layout import Window
from storage.ledger import Ledger, LedgerError
from storage.lifecycle import RETIRED, WindowState
from storage.schema import STREAM
from storage.windows import fit, subtract
from tests.ledger_steps import commit_in_ledger

DAY, HOUR = timedelta(days=1), timedelta(hours=1)
D0 = datetime(2026, 4, 1, tzinfo=UTC)


def live(ledger: Ledger) -> list[Window]:
    return sorted(r.window for r in ledger.windows(STREAM) if r.state not in RETIRED)


def assert_no_overlap(windows: list[Window]) -> None:
    for first, second in pairwise(windows):
        assert first.end <= second.start, (first, second)


def test_subtract_keeps_what_no_other_window_covers() -> None:
    window = Window(D0, D0 + DAY)
    taken = [Window(D0 - HOUR, D0 + 2 * HOUR), Window(D0 + 5 * HOUR, D0 + 6 * HOUR)]
    assert subtract(window, taken) == [
        Window(D0 + 2 * HOUR, D0 + 5 * HOUR),
        Window(D0 + 6 * HOUR, D0 + DAY),
    ]
    assert fit([window], [window]) == [window]


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    return Ledger.open(f"sqlite:///{tmp_path}/ledger.db")


def test_a_new_window_length_plans_from_where_the_archive_ends(ledger: Ledger) -> None:
    days = [Window(D0, D0 + DAY), Window(D0 + DAY, D0 + 2 * DAY)]
    for day in days:
        commit_in_ledger(ledger, day, 10)
    ledger.plan(STREAM, plan_windows(D0, D0 + 3 * DAY, 5 * HOUR, timedelta(0)))
    windows = live(ledger)
    assert_no_overlap(windows)
    planned = [w for w in windows if w not in days and w.start >= D0]
    # 5h windows align to multiples of 5h since the epoch, not to midnight: the first one after
    # the archive is cut to start where the archive ends.
    assert planned[0].start == D0 + 2 * DAY
    assert all(w.end - w.start <= 5 * HOUR for w in planned)
    assert planned[-1].end <= D0 + 3 * DAY
    # Planning again changes nothing.
    ledger.plan(STREAM, plan_windows(D0, D0 + 3 * DAY, 5 * HOUR, timedelta(0)))
    assert live(ledger) == windows


def test_replacing_retires_the_overlapped_windows_and_adds_the_new_ones(ledger: Ledger) -> None:
    day = Window(D0, D0 + DAY)
    commit_in_ledger(ledger, day, 10)
    halves = windows_between(D0, D0 + DAY, 12 * HOUR)
    assert [r.window for r in ledger.conflicts(STREAM, halves)] == [day]
    assert ledger.replace(STREAM, halves, reason="by test", now=datetime.now(UTC)) == 1
    record = ledger.window(STREAM, day)
    assert record is not None and record.state == WindowState.REPLACED
    assert live(ledger) == halves
    assert ledger.conflicts(STREAM, halves) == []


def test_a_window_being_processed_is_not_replaced(ledger: Ledger) -> None:
    day = Window(D0, D0 + DAY)
    ledger.plan(STREAM, [day])
    commit_in_ledger(ledger, day, 10, commit=False)
    with pytest.raises(LedgerError, match="being processed"):
        ledger.replace(
            STREAM, windows_between(D0, D0 + DAY, 12 * HOUR), reason="x", now=datetime.now(UTC)
        )
