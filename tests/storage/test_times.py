from __future__ import annotations

from datetime import UTC, datetime

from storage.retry_after import retry_after_seconds


def test_retry_after_accepts_seconds_and_dates_and_is_capped() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert retry_after_seconds("7") == 7.0
    assert retry_after_seconds("Thu, 01 Jan 2026 00:00:30 GMT", now) == 30.0
    assert retry_after_seconds("999999") == 300.0
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds(" 3 ") == 3.0
    assert retry_after_seconds(None) is None


def test_an_instant_is_written_in_utc_with_a_z() -> None:
    from datetime import timedelta, timezone

    import pytest

    from storage.instants import iso_z

    assert iso_z(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)) == "2026-01-02T03:04:05Z"
    later = datetime(2026, 1, 2, 4, 4, 5, tzinfo=timezone(timedelta(hours=1)))
    assert iso_z(later) == "2026-01-02T03:04:05Z"
    with pytest.raises(ValueError, match="time zone"):
        iso_z(datetime(2026, 1, 2))
