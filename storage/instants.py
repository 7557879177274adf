"""How the archive writes an instant as text: ISO 8601 in UTC with a `Z`, everywhere."""

from __future__ import annotations

from datetime import UTC, datetime


def iso_z(moment: datetime) -> str:
    """`2026-01-02T03:04:05Z` (microseconds when there are any); naive times are refused."""
    if moment.tzinfo is None:
        raise ValueError(f"an instant needs a time zone, got {moment!r}")
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
