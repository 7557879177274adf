"""The lifecycle module on its own: states, allowed transitions, what they record, their events."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest
from prometheus_client import REGISTRY

from storage import lifecycle
from storage.errors import ErrorKind
from storage.lifecycle import STATES, TRANSITIONS, InvalidTransition, Step, WindowState

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def test_split_is_a_state_of_its_own_retired_and_no_problem() -> None:
    assert WindowState.SPLIT in STATES
    assert WindowState.SPLIT in lifecycle.RETIRED
    assert WindowState.SPLIT in lifecycle.FINAL
    assert WindowState.SPLIT not in lifecycle.PROBLEMS
    assert lifecycle.steps_from(WindowState.SPLIT) == []


def test_every_state_is_reachable_from_planned() -> None:
    reached = {WindowState.PLANNED}
    frontier = [WindowState.PLANNED]
    while frontier:
        state = frontier.pop()
        for step in lifecycle.steps_from(state):
            target = TRANSITIONS[step].target
            if target not in reached:
                reached.add(target)
                frontier.append(target)
    assert reached == set(STATES)


def test_a_step_from_a_state_it_does_not_start_from_is_an_error() -> None:
    with pytest.raises(InvalidTransition, match="'committed' cannot take step 'commit'") as caught:
        lifecycle.change(
            Step.COMMIT,
            WindowState.COMMITTED,
            NOW,
            rows=1,
            rejects=0,
            committed_at=NOW,
            export_id="e",
            manifest_key="m",
        )
    assert caught.value.kind is ErrorKind.PERMANENT


def test_a_step_must_be_given_exactly_the_columns_it_records() -> None:
    with pytest.raises(InvalidTransition, match="records"):
        lifecycle.change(Step.QUARANTINE, WindowState.RECEIVED, NOW)
    with pytest.raises(InvalidTransition, match="records"):
        lifecycle.change(Step.QUARANTINE, WindowState.RECEIVED, NOW, reason="x", rows=1)


def test_change_records_the_given_columns_clears_the_rest_and_sets_the_target() -> None:
    values = lifecycle.change(Step.QUARANTINE, WindowState.RECEIVED, NOW, reason="bad body")
    assert values == {
        "state": "quarantined",
        "reason": "bad body",
        "lease_owner": None,
        "lease_until": None,
        "updated_at": NOW,
    }


def test_emit_logs_the_steps_event_and_counts_it(caplog: pytest.LogCaptureFixture) -> None:
    labels = {"step": "time_out", "state": "failed"}
    before = REGISTRY.get_sample_value("archiver_window_transitions_total", labels) or 0.0
    timeouts = REGISTRY.get_sample_value("archiver_callback_timeouts_total") or 0.0
    with caplog.at_level(logging.INFO, logger="chat_archiver.lifecycle"):
        lifecycle.emit(lifecycle.Event(Step.TIME_OUT, "w", {"reason": "no callback"}))
    (record,) = caplog.records
    assert (record.getMessage(), record.levelno) == ("window_failed", logging.ERROR)
    assert (record.__dict__["window"], record.__dict__["reason"]) == ("w", "no callback")
    assert REGISTRY.get_sample_value("archiver_window_transitions_total", labels) == before + 1
    assert REGISTRY.get_sample_value("archiver_callback_timeouts_total") == timeouts + 1


def test_every_transition_has_an_event_and_clears_what_it_does_not_record() -> None:
    for step, transition in TRANSITIONS.items():
        assert transition.event, step
        assert not transition.records & set(transition.clears), step
