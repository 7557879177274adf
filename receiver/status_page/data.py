"""What the status page and its JSON API show, read from the ledger (and a manifest).

Everything here is synchronous and blocking: the routes run it in a worker thread with a bound,
never on the event loop. The documents are plain JSON-able dicts, one shape for the HTML page
and for `/api/...`.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from storage.layout import Window
from storage.ledger import Ledger, WindowRecord
from storage.lifecycle import IN_FLIGHT, PROBLEMS, STATES
from storage.objectstore import ObjectStore, StoreError

# The calendar's colour of each state (background, text); every state has one.
STATE_COLOURS: dict[str, tuple[str, str]] = {
    "planned": ("#d9d9d9", "#1a1a1a"),
    "requested": ("#9ecae1", "#08306b"),
    "received": ("#6baed6", "#08306b"),
    "committed": ("#31a354", "#ffffff"),
    "failed": ("#cb181d", "#ffffff"),
    "quarantined": ("#fd8d3c", "#3d1a00"),
    "split": ("#f0f0f0", "#525252"),
    "replaced": ("#e7e1ef", "#3f007d"),
}


@dataclass(frozen=True)
class PageOptions:
    stream: str
    # Where archiving started: ARCHIVER_START, else the ledger's creation.
    start: datetime | None


def iso(moment: datetime | None) -> str | None:
    """ISO 8601 in UTC to the second, as everywhere else in the tool."""
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z") if moment else None


def window_id(window: Window) -> str:
    """The window in URLs: its object-name form, e.g. 20260131T000000Z-20260201T000000Z."""
    return window.name


def _window(record: WindowRecord) -> dict[str, Any]:
    return {
        "id": window_id(record.window),
        "window_start": iso(record.window.start),
        "window_end": iso(record.window.end),
        "date": record.window.start.date().isoformat(),
        "state": str(record.state),
        "attempts": record.attempts,
        "export_id": record.export_id,
        "reason": record.reason,
        "rows": record.rows,
        "rejects": record.rejects,
        "requested_at": iso(record.requested_at),
        "deadline_at": iso(record.deadline_at),
        "committed_at": iso(record.committed_at),
        "updated_at": iso(record.updated_at),
    }


def _calendar(records: list[WindowRecord]) -> list[dict[str, Any]]:
    """One row per UTC date (newest first), one cell per window starting that day."""
    days: OrderedDict[str, list[dict[str, Any]]] = OrderedDict()
    for record in sorted(records, key=lambda r: (r.window.start, r.window.end)):
        cell = _window(record)
        cell["label"] = record.window.start.strftime("%H:%M")
        days.setdefault(cell["date"], []).append(cell)
    return [{"date": date, "cells": cells} for date, cells in reversed(days.items())]


def overview(ledger: Ledger, options: PageOptions, now: datetime, days: int) -> dict[str, Any]:
    summary = ledger.summary(options.stream)
    recent = ledger.windows(options.stream, since=now - timedelta(days=days))
    in_flight = ledger.windows(options.stream, states=sorted(IN_FLIGHT))
    last = summary.last_committed
    start = options.start or ledger.created_at()
    if last is not None:
        lag, lag_from = (now - last.window.end).total_seconds(), "the last committed window's end"
    else:
        lag, lag_from = (now - start).total_seconds(), "the start of archiving (nothing committed)"
    return {
        "generated_at": iso(now),
        "stream": options.stream,
        "days": days,
        "by_state": {str(state): summary.by_state.get(state, 0) for state in STATES},
        "lag_seconds": round(max(lag, 0)),
        "lag_from": lag_from,
        "archiving_since": iso(start),
        "last_committed": _window(last) if last else None,
        "last_commit_at": iso(last.committed_at) if last else None,
        "raw_bytes": ledger.raw_bytes(),
        "in_flight": [_window(record) for record in in_flight],
        "problems": [_window(record) for record in summary.problems],
        "calendar": _calendar(recent),
    }


def _manifest(store: ObjectStore, record: WindowRecord) -> dict[str, Any] | None:
    if not record.manifest_key:
        return None
    try:
        return dict(json.loads(store.get_bytes(record.manifest_key)))
    except (StoreError, ValueError):
        return None


def window_detail(
    ledger: Ledger, store: ObjectStore, stream: str, window: Window
) -> dict[str, Any] | None:
    record = ledger.window(stream, window)
    if record is None:
        return None
    manifest = _manifest(store, record)
    attempts = ledger.attempts(record.id)
    callbacks = ledger.window_callbacks(record.id)
    attempt_of = {attempt.export_id: attempt.attempt for attempt in attempts}
    document = _window(record)
    document.update(
        {
            "is_problem": record.state in PROBLEMS,
            "attempt_list": [
                {
                    "attempt": a.attempt,
                    "export_id": a.export_id,
                    "requested_at": iso(a.requested_at),
                    "current": a.export_id == record.export_id,
                }
                for a in attempts
            ],
            "callbacks": [
                {
                    "callback_id": c.callback_id,
                    "export_id": c.export_id,
                    "attempt": attempt_of.get(c.export_id),
                    "received_at": iso(c.received_at),
                    "bytes": c.size,
                    "outcome": str(c.state),
                    "reason": c.reason,
                    "raw_key": c.raw_key,
                }
                for c in callbacks
            ],
            "manifest_key": record.manifest_key,
            "parts": (manifest or {}).get("parts", []),
            "rejects_key": (manifest or {}).get("rejects_key"),
        }
    )
    return document
