"""Object names of the archive, relative to the store's prefix.

Names derive from the window and the part number only, so processing a window again
overwrites the same objects.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime

from storage.schema import STREAM

_TS_FORMAT = "%Y%m%dT%H%M%SZ"
_TS_MICRO_FORMAT = "%Y%m%dT%H%M%S%fZ"
_WINDOW_NAME = re.compile(r"^(\d{8}T\d{6}Z)-(\d{8}T\d{6}Z)$")
_PART_NAME = re.compile(r"/part-(\d{8}T\d{6}Z-\d{8}T\d{6}Z)-\d{4}\.parquet$")


@dataclass(frozen=True, order=True)
class Window:
    """A half-open interval [start, end) of UTC time."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("window bounds must be timezone-aware")
        if self.end <= self.start:
            raise ValueError(f"window end {self.end} is not after its start {self.start}")

    @property
    def name(self) -> str:
        return f"{format_ts(self.start)}-{format_ts(self.end)}"

    def __str__(self) -> str:
        return f"{self.start.isoformat()}..{self.end.isoformat()}"


def format_ts(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(_TS_FORMAT)


def format_ts_micro(moment: datetime) -> str:
    """`received_at` in raw-callback names: to the microsecond, so names sort by arrival."""
    return moment.astimezone(UTC).strftime(_TS_MICRO_FORMAT)


def parse_ts(text: str) -> datetime:
    return datetime.strptime(text, _TS_FORMAT).replace(tzinfo=UTC)


def window_from_name(name: str) -> Window:
    match = _WINDOW_NAME.match(name)
    if not match:
        raise ValueError(f"not a window name: {name!r}")
    return Window(parse_ts(match.group(1)), parse_ts(match.group(2)))


def partition_prefix(day: date, stream: str = STREAM) -> str:
    return f"{stream}/date={day.isoformat()}/"


def part_key(day: date, window: Window, number: int, stream: str = STREAM) -> str:
    return f"{partition_prefix(day, stream)}part-{window.name}-{number:04d}.parquet"


def window_of_part(key: str) -> Window | None:
    """The window a part key was written for, or None when the key is not a part's name."""
    match = _PART_NAME.search(key)
    if not match:
        return None
    try:
        return window_from_name(match.group(1))
    except ValueError:
        return None


def part_prefix_for_window(day: date, window: Window, stream: str = STREAM) -> str:
    """The prefix every part of `window` in partition `day` starts with."""
    return f"{partition_prefix(day, stream)}part-{window.name}-"


def manifest_prefix(stream: str = STREAM) -> str:
    return f"_manifests/{stream}/"


def manifest_key(window: Window, stream: str = STREAM) -> str:
    return f"{manifest_prefix(stream)}{window.name}.json"


def staging_prefix(window: Window, stream: str = STREAM) -> str:
    """Where a commit of the plain layout uploads its parts before promoting them into the
    table's prefix: outside `{stream}/`, so a globbing reader never sees them."""
    return f"_staging/{stream}/{window.name}/"


def rejects_key(window: Window, stream: str = STREAM) -> str:
    return f"_rejects/{stream}/{window.name}.jsonl"


def raw_prefix(export_id: str) -> str:
    return f"_raw/{export_id}/"


def raw_body_key(export_id: str, received_at: datetime, callback_id: str) -> str:
    return f"{raw_prefix(export_id)}{format_ts_micro(received_at)}-{callback_id}.body"


def raw_meta_key(body_key: str) -> str:
    return body_key.removesuffix(".body") + ".json"


def raw_download_key(body_key: str) -> str:
    """Where the file a link notice pointed at is kept, beside the callback body."""
    return body_key.removesuffix(".body") + ".download"


def raw_received_at(key: str) -> datetime | None:
    """The arrival time in a raw object's name (`{received_at}-{callback_id}.ext`), or None."""
    name = key.rsplit("/", 1)[-1]
    stamp = name.split("-", 1)[0]
    try:
        return datetime.strptime(stamp, _TS_MICRO_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return None
