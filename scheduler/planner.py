"""Window planning: which UTC-aligned windows exist between two instants.

Pure functions with no I/O, so the scheduler, `export` and `backfill` agree on the same windows
and the ledger's unique (stream, start, end) key deduplicates them across runs and replicas.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from storage.layout import Window

# The upstream refuses export periods over six months; window lengths above this are refused.
MAX_REQUEST_SPAN = timedelta(days=183)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_DURATION = re.compile(r"^(\d+)([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> timedelta:
    """'0s', '30s', '15m', '1h', '1d' as a timedelta; ValueError naming the bad text otherwise.

    Zero is a valid duration (no settle delay, no pacing); settings that must be positive
    check that themselves.
    """
    match = _DURATION.match(text.strip())
    if not match:
        raise ValueError(
            f"invalid duration {text!r}: expected a whole number followed by s, m, h or d "
            "(for example 30s, 15m, 1h, 1d)"
        )
    return timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])


def align_down(moment: datetime, length: timedelta) -> datetime:
    """The latest UTC multiple of `length` since the epoch that is not after `moment`."""
    _check_aware(moment, "moment")
    _check_length(length)
    steps = (moment - _EPOCH) // length
    return _EPOCH + steps * length


def plan_windows(
    start: datetime, now: datetime, length: timedelta, settle_delay: timedelta
) -> list[Window]:
    """Every aligned window from the one holding `start` whose end is <= now - settle_delay.

    Oldest first. A window still open, or closed less than `settle_delay` ago, is left for a
    later run so late-arriving messages land in it before it is requested.
    """
    _check_aware(now, "now")
    if settle_delay < timedelta(0):
        raise ValueError(f"settle delay must not be negative, got {settle_delay}")
    cutoff = now - settle_delay
    cursor = align_down(start, length)
    windows = []
    while cursor + length <= cutoff:
        windows.append(Window(cursor, cursor + length))
        cursor += length
    return windows


def windows_between(since: datetime, until: datetime, length: timedelta) -> list[Window]:
    """The aligned windows covering [since, until), oldest first, for `export` and `backfill`.

    The first window starts at or before `since` and the last ends at or after `until`.
    """
    _check_aware(until, "until")
    if until <= since:
        raise ValueError(
            f"the range end {until.isoformat()} is not after its start {since.isoformat()}"
        )
    cursor = align_down(since, length)
    windows = []
    while cursor < until:
        windows.append(Window(cursor, cursor + length))
        cursor += length
    return windows


def split_window(window: Window) -> tuple[Window, Window]:
    """Two halves of `window`, split on a whole second, for an upstream "period exceeds" refusal.

    Whole seconds keep object names (second precision) distinct for each half.
    """
    seconds = int((window.end - window.start).total_seconds())
    if seconds < 2:
        raise ValueError(f"window {window} is too short to split")
    middle = window.start + timedelta(seconds=seconds // 2)
    return Window(window.start, middle), Window(middle, window.end)


def _check_aware(moment: datetime, name: str) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got {moment.isoformat()}")


def _check_length(length: timedelta) -> None:
    if length <= timedelta(0):
        raise ValueError(f"window length must be positive, got {length}")
