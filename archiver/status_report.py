"""What `status` shows, computed from the ledger; pure apart from the ledger read."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from storage.instants import iso_z
from storage.ledger import Summary, WindowRecord
from storage.lifecycle import STATES


def _iso(moment: datetime | None) -> str | None:
    return iso_z(moment) if moment else None


def window_json(record: WindowRecord) -> dict[str, Any]:
    return {
        "window_start": _iso(record.window.start),
        "window_end": _iso(record.window.end),
        "state": record.state,
        "attempts": record.attempts,
        "export_id": record.export_id,
        "reason": record.reason,
        "rows": record.rows,
        "rejects": record.rejects,
        "committed_at": _iso(record.committed_at),
        "requested_at": _iso(record.requested_at),
        "deadline_at": _iso(record.deadline_at),
    }


def status_document(summary: Summary, now: datetime, *, api_key_rejected: bool) -> dict[str, Any]:
    """The `status --json` document; its keys are a contract (README)."""
    last = summary.last_committed
    return {
        "by_state": {state: summary.by_state.get(state, 0) for state in STATES},
        "last_committed": window_json(last) if last else None,
        "oldest_uncommitted": (
            window_json(summary.oldest_uncommitted) if summary.oldest_uncommitted else None
        ),
        "lag_seconds": round((now - last.window.end).total_seconds()) if last else None,
        "api_key_rejected": api_key_rejected,
        "problems": [window_json(record) for record in summary.problems],
        "in_flight": [window_json(record) for record in summary.in_flight],
    }


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, _ = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m"


def _raw_line(raw: dict[str, Any]) -> str:
    if raw.get("error"):
        return f"unknown ({raw['error']})"
    retention = raw.get("retention_seconds")
    kept = f"kept {format_duration(retention)}" if retention else "kept for ever"
    return f"{raw['objects']} objects, {human_bytes(raw['bytes'])}, {kept}"


def human_bytes(count: int) -> str:
    for unit, size in (("GB", 1024**3), ("MB", 1024**2), ("KB", 1024)):
        if count >= size:
            return f"{count / size:.1f} {unit}"
    return f"{count} B"


def status_text(document: dict[str, Any]) -> str:
    lines = ["Windows by state"]
    for state, count in document["by_state"].items():
        lines.append(f"  {state:<12} {count:>6}")

    def describe(entry: dict[str, Any] | None) -> str:
        if entry is None:
            return "none"
        return f"{entry['window_start']} .. {entry['window_end']} ({entry['state']})"

    lines.append("")
    lines.append(f"Last committed      {describe(document['last_committed'])}")
    lines.append(f"Oldest uncommitted  {describe(document['oldest_uncommitted'])}")
    lines.append(f"Lag                 {format_duration(document['lag_seconds'])}")
    key = (
        "REJECTED by the upstream: set a valid ARCHIVER_API_KEY"
        if document["api_key_rejected"]
        else "accepted"
    )
    lines.append(f"API key             {key}")
    raw = document.get("raw_store")
    if raw is not None:
        lines.append(f"Raw store (_raw/)   {_raw_line(raw)}")
    problems = document["problems"]
    lines.append("")
    if not problems:
        lines.append("Problems            none")
    else:
        lines.append(f"Problems ({len(problems)})")
        lines.append(f"  {'window start':<22} {'state':<12} {'tries':>5}  reason")
        for entry in problems:
            lines.append(
                f"  {entry['window_start']:<22} {entry['state']:<12} {entry['attempts']:>5}  "
                f"{entry['reason'] or ''}"
            )
    in_flight = document.get("in_flight", [])
    lines.append("")
    if not in_flight:
        lines.append("In flight           none")
    else:
        lines.append(f"In flight ({len(in_flight)})")
        lines.append(windows_table(in_flight))
    return "\n".join(lines)


def windows_table(entries: list[dict[str, Any]]) -> str:
    """Windows one a line: start, state, attempt, export id, callback deadline, reason."""
    lines = [
        f"  {'window start':<22} {'window end':<22} {'state':<12} {'try':>3}  "
        f"{'export id':<32}  {'callback deadline':<22} reason"
    ]
    for entry in entries:
        lines.append(
            f"  {entry['window_start']:<22} {entry['window_end']:<22} {entry['state']:<12} "
            f"{entry['attempts']:>3}  {entry['export_id'] or '-':<32}  "
            f"{entry['deadline_at'] or '-':<22} {entry['reason'] or ''}"
        )
    return "\n".join(lines)
