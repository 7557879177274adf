from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scheduler.planner import (
    MAX_REQUEST_SPAN,
    align_down,
    parse_duration,
    plan_windows,
    split_window,
    windows_between,
)
from storage.layout import Window

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", timedelta(seconds=30)),
        ("0m", timedelta(0)),
        ("15m", timedelta(minutes=15)),
        ("1h", HOUR),
        ("1d", DAY),
        ("7d", timedelta(days=7)),
        (" 2h ", timedelta(hours=2)),
    ],
)
def test_parse_duration_reads_whole_units(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "1", "h", "1.5h", "-1h", "1w", "1 h", "1H", "15min"])
def test_parse_duration_refuses_anything_else_naming_the_text(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration") as caught:
        parse_duration(text)
    assert repr(text) in str(caught.value)


def test_max_request_span_is_upstreams_six_months() -> None:
    assert timedelta(days=183) == MAX_REQUEST_SPAN


def test_align_down_snaps_to_utc_multiples_since_the_epoch() -> None:
    assert align_down(at("2024-03-05T17:42:10"), DAY) == at("2024-03-05T00:00:00")
    assert align_down(at("2024-03-05T17:42:10"), timedelta(minutes=15)) == at("2024-03-05T17:30")
    assert align_down(at("2024-03-05T00:00:00"), DAY) == at("2024-03-05T00:00:00")


def test_align_down_uses_utc_whatever_the_offset_of_the_moment() -> None:
    plus_two = timezone(timedelta(hours=2))
    moment = datetime(2024, 3, 5, 1, 0, tzinfo=plus_two)  # 23:00 UTC the day before
    aligned = align_down(moment, DAY)
    assert aligned == at("2024-03-04T00:00:00")
    assert aligned.utcoffset() == timedelta(0)


def test_align_down_refuses_naive_moments_and_empty_lengths() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        align_down(datetime(2024, 1, 1), DAY)
    with pytest.raises(ValueError, match="positive"):
        align_down(at("2024-01-01T00:00:00"), timedelta(0))


@given(
    st.datetimes(
        min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
    ),
    st.sampled_from([timedelta(seconds=30), timedelta(minutes=15), HOUR, DAY, 7 * DAY]),
)
def test_align_down_is_the_start_of_the_window_holding_the_moment(
    moment: datetime, length: timedelta
) -> None:
    start = align_down(moment, length)
    assert start <= moment < start + length
    assert (start - datetime(1970, 1, 1, tzinfo=UTC)) % length == timedelta(0)


def test_plan_windows_stops_before_the_settle_delay() -> None:
    windows = plan_windows(
        start=at("2024-01-01T10:00:00"),
        now=at("2024-01-04T00:10:00"),
        length=DAY,
        settle_delay=timedelta(minutes=15),
    )
    # The window ending 2024-01-04T00:00 closed only 10 minutes ago.
    assert windows == [
        Window(at("2024-01-01T00:00:00"), at("2024-01-02T00:00:00")),
        Window(at("2024-01-02T00:00:00"), at("2024-01-03T00:00:00")),
    ]


def test_plan_windows_includes_a_window_ending_exactly_at_the_cutoff() -> None:
    windows = plan_windows(
        start=at("2024-01-01T00:00:00"),
        now=at("2024-01-02T00:15:00"),
        length=DAY,
        settle_delay=timedelta(minutes=15),
    )
    assert windows == [Window(at("2024-01-01T00:00:00"), at("2024-01-02T00:00:00"))]


def test_plan_windows_is_empty_before_the_first_window_settles() -> None:
    assert plan_windows(at("2024-01-01T05:00"), at("2024-01-01T23:59"), DAY, timedelta(0)) == []
    assert plan_windows(at("2024-01-05T00:00"), at("2024-01-01T00:00"), DAY, timedelta(0)) == []


def test_plan_windows_are_contiguous_oldest_first() -> None:
    windows = plan_windows(at("2024-01-01T00:07"), at("2024-01-01T06:00"), HOUR, timedelta(0))
    assert len(windows) == 6
    assert windows[0].start == at("2024-01-01T00:00")
    assert all(a.end == b.start for a, b in itertools.pairwise(windows))


def test_plan_windows_refuses_a_negative_settle_delay() -> None:
    with pytest.raises(ValueError, match="settle delay"):
        plan_windows(at("2024-01-01T00:00"), at("2024-01-02T00:00"), DAY, -HOUR)


def test_windows_between_covers_the_range_with_aligned_windows() -> None:
    windows = windows_between(at("2024-01-01T10:00"), at("2024-01-03T00:00"), DAY)
    assert windows == [
        Window(at("2024-01-01T00:00"), at("2024-01-02T00:00")),
        Window(at("2024-01-02T00:00"), at("2024-01-03T00:00")),
    ]


def test_windows_between_includes_the_window_holding_a_mid_window_end() -> None:
    windows = windows_between(at("2024-01-01T00:00"), at("2024-01-01T00:01"), HOUR)
    assert windows == [Window(at("2024-01-01T00:00"), at("2024-01-01T01:00"))]


def test_windows_between_refuses_an_empty_range() -> None:
    with pytest.raises(ValueError, match="not after"):
        windows_between(at("2024-01-02T00:00"), at("2024-01-02T00:00"), DAY)


def test_split_window_halves_on_a_whole_second() -> None:
    first, second = split_window(Window(at("2024-01-01T00:00:00"), at("2024-01-01T00:00:03")))
    assert first == Window(at("2024-01-01T00:00:00"), at("2024-01-01T00:00:01"))
    assert second == Window(at("2024-01-01T00:00:01"), at("2024-01-01T00:00:03"))
    year = Window(at("2024-01-01T00:00"), at("2025-01-01T00:00"))
    first, second = split_window(year)
    assert first.start == year.start and second.end == year.end and first.end == second.start
    assert first.end == at("2024-07-02T00:00")


def test_split_window_refuses_a_window_too_short_to_split() -> None:
    with pytest.raises(ValueError, match="too short"):
        split_window(Window(at("2024-01-01T00:00:00"), at("2024-01-01T00:00:01")))
