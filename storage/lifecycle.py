"""The life of a window: its states, the allowed transitions, and what each one records.

This module is the one owner of the window lifecycle. The ledger's SQL executes a transition by
asking `change()` for the column values and compare-and-setting the window's row on its current
state; the requester, the worker, `status`, `/metrics` and `backfill` take their lists of states
from here. Each transition, once its transaction has committed, logs one event and counts itself
in `archiver_window_transitions_total` (`emit()`).

It imports nothing of ours but the error root, so it stays pure and testable on its own.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from prometheus_client import Counter

from storage.errors import PermanentError

log = logging.getLogger("chat_archiver.lifecycle")


class WindowState(enum.StrEnum):
    PLANNED = "planned"
    REQUESTED = "requested"
    RECEIVED = "received"
    COMMITTED = "committed"
    FAILED = "failed"
    QUARANTINED = "quarantined"
    SPLIT = "split"
    REPLACED = "replaced"


STATES: tuple[WindowState, ...] = tuple(WindowState)
# Waiting on the upstream (a callback) or on the worker.
IN_FLIGHT: frozenset[WindowState] = frozenset({WindowState.REQUESTED, WindowState.RECEIVED})
# Where a window rests until someone acts; `backfill` waits for these.
FINAL: frozenset[WindowState] = frozenset(
    {
        WindowState.COMMITTED,
        WindowState.FAILED,
        WindowState.QUARANTINED,
        WindowState.SPLIT,
        WindowState.REPLACED,
    }
)
# What an operator must look at: `status` problems, the alerts in docs/operations.md.
PROBLEMS: tuple[WindowState, ...] = (WindowState.FAILED, WindowState.QUARANTINED)
# Replaced by its halves, or by windows of another length (`export --replace`): history, never
# requested or processed again, not a problem.
RETIRED: frozenset[WindowState] = frozenset({WindowState.SPLIT, WindowState.REPLACED})

# The reason migrated split windows carried when `split` was stored as `failed`.
LEGACY_SPLIT_REASON = "split into halves"

_LEASE = ("lease_owner", "lease_until")


class Step(enum.StrEnum):
    """A transition's name, as logged and counted."""

    PLAN = "plan"
    MAKE_DUE = "make_due"
    REQUEST = "request"
    REQUEST_AFTER_TIMEOUT = "request_after_timeout"
    TIME_OUT = "time_out"
    REQUEST_DEFERRED = "request_deferred"
    REQUEST_REFUSED = "request_refused"
    SPLIT = "split"
    RECEIVE = "receive"
    COMMIT = "commit"
    QUARANTINE = "quarantine"
    RETRY = "retry"
    GIVE_UP = "give_up"
    REPLAY = "replay"
    REPLACE = "replace"


@dataclass(frozen=True)
class Transition:
    """From-states → to-state, the columns it must be given, the columns it clears, its event."""

    sources: frozenset[WindowState]
    target: WindowState
    records: frozenset[str] = field(default_factory=frozenset)
    clears: tuple[str, ...] = ()
    event: str = ""
    level: int = logging.INFO


def _t(
    sources: set[WindowState] | frozenset[WindowState],
    target: WindowState,
    records: tuple[str, ...],
    clears: tuple[str, ...],
    event: str,
    level: int = logging.INFO,
) -> Transition:
    return Transition(frozenset(sources), target, frozenset(records), clears, event, level)


S = WindowState
_REQUEST_RECORDS = ("attempts", "export_id", "requested_at", "deadline_at")

TRANSITIONS: Mapping[Step, Transition] = {
    # A window the ledger did not know; `sources` empty means "inserted".
    Step.PLAN: _t(set(), S.PLANNED, (), (), "window_planned", logging.DEBUG),
    # `export`/`backfill` ask for it now. From committed it is a forced re-export that supersedes
    # every earlier export; from requested, a re-request that keeps the earlier ones eligible.
    Step.MAKE_DUE: _t(
        {S.PLANNED, S.REQUESTED, S.FAILED, S.QUARANTINED, S.COMMITTED},
        S.PLANNED,
        ("attempts", "next_request_at"),
        ("deadline_at", "reason"),
        "window_due",
    ),
    Step.REQUEST: _t(
        {S.PLANNED},
        S.REQUESTED,
        _REQUEST_RECORDS,
        ("next_request_at", "reason"),
        "export_attempt_claimed",
        logging.DEBUG,
    ),
    Step.REQUEST_AFTER_TIMEOUT: _t(
        {S.REQUESTED},
        S.REQUESTED,
        _REQUEST_RECORDS,
        ("next_request_at", "reason"),
        "callback_timeout",
        logging.WARNING,
    ),
    Step.TIME_OUT: _t(
        {S.REQUESTED}, S.FAILED, ("reason",), ("deadline_at",), "window_failed", logging.ERROR
    ),
    Step.REQUEST_DEFERRED: _t(
        {S.REQUESTED},
        S.PLANNED,
        ("attempts", "next_request_at", "reason"),
        ("deadline_at",),
        "export_request_deferred",
        logging.WARNING,
    ),
    Step.REQUEST_REFUSED: _t(
        {S.REQUESTED},
        S.FAILED,
        ("attempts", "reason"),
        ("next_request_at", "deadline_at"),
        "window_failed",
        logging.ERROR,
    ),
    Step.SPLIT: _t(
        {S.PLANNED, S.REQUESTED},
        S.SPLIT,
        ("reason",),
        ("next_request_at", "deadline_at", *_LEASE),
        "window_split",
        logging.WARNING,
    ),
    Step.RECEIVE: _t(
        {S.PLANNED, S.REQUESTED, S.RECEIVED, S.FAILED, S.QUARANTINED},
        S.RECEIVED,
        (),
        ("reason", "next_request_at", "deadline_at"),
        "window_received",
    ),
    Step.COMMIT: _t(
        {S.RECEIVED},
        S.COMMITTED,
        ("rows", "rejects", "committed_at", "export_id", "manifest_key"),
        ("reason", "next_request_at", "deadline_at", *_LEASE),
        "window_committed",
    ),
    Step.QUARANTINE: _t(
        {S.RECEIVED},
        S.QUARANTINED,
        ("reason",),
        _LEASE,
        "window_quarantined",
        logging.ERROR,
    ),
    # The attempt failed (a failure notice, a failed download): request the window again.
    Step.RETRY: _t(
        {S.RECEIVED},
        S.PLANNED,
        ("next_request_at", "reason"),
        _LEASE,
        "export_attempt_failed",
        logging.WARNING,
    ),
    Step.GIVE_UP: _t(
        {S.RECEIVED},
        S.FAILED,
        ("reason",),
        ("next_request_at", *_LEASE),
        "window_failed",
        logging.ERROR,
    ),
    # `export --replace`: windows of another length take over this one's time. Its committed
    # rows stay readable until theirs are committed; its callbacks are superseded.
    Step.REPLACE: _t(
        {S.PLANNED, S.REQUESTED, S.COMMITTED, S.FAILED, S.QUARANTINED},
        S.REPLACED,
        ("reason",),
        ("next_request_at", "deadline_at", *_LEASE),
        "window_replaced",
        logging.WARNING,
    ),
    Step.REPLAY: _t(
        {S.PLANNED, S.REQUESTED, S.RECEIVED, S.COMMITTED, S.FAILED, S.QUARANTINED},
        S.RECEIVED,
        (),
        ("reason", "next_request_at", "deadline_at"),
        "window_replayed",
    ),
}


class InvalidTransition(PermanentError):
    """A transition was asked of a window in a state it does not start from, or with the wrong
    columns: a bug or a race, never silently ignored."""


TRANSITION_COUNT = Counter(
    "archiver_window_transitions_total",
    "Window state transitions, by step and the state they led to.",
    ["step", "state"],
)
CALLBACK_TIMEOUTS = Counter(
    "archiver_callback_timeouts_total",
    "Export attempts whose callback did not arrive within ARCHIVER_CALLBACK_TIMEOUT.",
)


def allowed(step: Step, source: str | None) -> bool:
    """Whether `step` may start from `source` (None: a window not yet in the ledger)."""
    transition = TRANSITIONS[step]
    if source is None:
        return not transition.sources
    return source in transition.sources


def steps_from(source: str) -> list[Step]:
    """Every step a window in `source` may take."""
    return [step for step in Step if allowed(step, source)]


def change(step: Step, source: str, now: datetime, **recorded: Any) -> dict[str, Any]:
    """The column values that take a window in `source` through `step`.

    Raises InvalidTransition if `step` does not start from `source`, or if `recorded` is not
    exactly the columns the step records.
    """
    transition = TRANSITIONS[step]
    if not allowed(step, source):
        raise InvalidTransition(
            f"a window in state {str(source)!r} cannot take step {step.value!r} "
            f"(allowed from: {', '.join(sorted(transition.sources)) or 'nowhere'})"
        )
    if set(recorded) != transition.records:
        raise InvalidTransition(
            f"step {step.value!r} records {sorted(transition.records)}, given {sorted(recorded)}"
        )
    values: dict[str, Any] = dict.fromkeys(transition.clears)
    values.update(recorded)
    values["state"] = transition.target.value
    values["updated_at"] = now
    return values


@dataclass(frozen=True)
class Event:
    """A transition that happened, to be emitted once its transaction has committed."""

    step: Step
    window: str
    fields: Mapping[str, Any] = field(default_factory=dict)


def emit(event: Event) -> None:
    """Logs the transition's event and counts it."""
    transition = TRANSITIONS[event.step]
    TRANSITION_COUNT.labels(event.step.value, transition.target.value).inc()
    if event.step in (Step.REQUEST_AFTER_TIMEOUT, Step.TIME_OUT):
        CALLBACK_TIMEOUTS.inc()
    log.log(
        transition.level,
        transition.event,
        extra={"window": event.window, "state": transition.target.value, **event.fields},
    )
