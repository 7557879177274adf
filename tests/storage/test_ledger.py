"""The ledger's planning, requesting and reading, on SQLite and on a real Postgres."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from storage.layout import Window
from storage.ledger import ExportAttempt, Ledger, LedgerError
from storage.ledger.connect import Database
from storage.ledger.moves import Move, move_many
from storage.ledger.planning import lock_windows
from storage.ledger.tables import LEDGER_SCHEMA_VERSION
from storage.lifecycle import STATES, InvalidTransition, Step, WindowState

STREAM = "chat_messages"
T0 = datetime(2024, 1, 1, tzinfo=UTC)
DAY = timedelta(days=1)
HOUR = timedelta(hours=1)


def day(n: int) -> Window:
    return Window(T0 + n * DAY, T0 + (n + 1) * DAY)


def claim(
    ledger: Ledger, now: datetime, *, limit: int = 10, max_attempts: int = 3
) -> list[ExportAttempt]:
    return ledger.claim_due(
        STREAM, now, limit=limit, callback_timeout=HOUR, max_attempts=max_attempts
    )


def state_of(ledger: Ledger, window: Window) -> str:
    record = ledger.window(STREAM, window)
    assert record is not None
    return record.state


def test_open_creates_the_schema_once_and_remembers_when(ledger_url: str) -> None:
    first = Ledger.open(ledger_url)
    created = first.created_at()
    first.plan(STREAM, [day(0)])
    first.close()
    again = Ledger.open(ledger_url)
    try:
        assert again.created_at() == created
        assert created.tzinfo is not None and created.utcoffset() == timedelta(0)
        assert again.get_meta("schema_version") == str(LEDGER_SCHEMA_VERSION)
        assert [r.window for r in again.windows(STREAM)] == [day(0)]
        again.ping()
    finally:
        again.close()


def test_open_refuses_a_ledger_from_a_newer_version(ledger_url: str) -> None:
    with Ledger.open(ledger_url) as ledger:
        ledger.set_meta("schema_version", "99")
    with pytest.raises(LedgerError, match="schema version 99, newer than this chat-archiver"):
        Ledger.open(ledger_url)


def test_open_refuses_a_bad_url_in_one_line() -> None:
    with pytest.raises(LedgerError, match="invalid ledger URL") as caught:
        Ledger.open("not a url")
    assert "\n" not in str(caught.value)
    with pytest.raises(LedgerError, match="unsupported ledger database 'mysql'"):
        Ledger.open("mysql://user@localhost/db")


def test_open_names_an_unreachable_postgres_without_its_password() -> None:
    with pytest.raises(LedgerError, match="cannot open the ledger") as caught:
        Ledger.open("postgresql+psycopg://archiver:s3cret@127.0.0.1:1/archive")
    message = str(caught.value)
    assert "s3cret" not in message
    assert "127.0.0.1:1" in message
    assert "\n" not in message


def test_open_says_why_a_sqlite_file_cannot_be_created(tmp_path: Path) -> None:
    with pytest.raises(LedgerError, match="unable to open database file"):
        Ledger.open(f"sqlite:///{tmp_path / 'missing' / 'ledger.db'}")


def test_meta_values_are_set_replaced_and_removed(ledger: Ledger) -> None:
    assert ledger.get_meta("api_key_rejected") is None
    ledger.set_meta("api_key_rejected", "abc")
    ledger.set_meta("api_key_rejected", "def")
    assert ledger.get_meta("api_key_rejected") == "def"
    ledger.set_meta("api_key_rejected", None)
    assert ledger.get_meta("api_key_rejected") is None


def test_plan_adds_only_new_windows(ledger: Ledger) -> None:
    assert ledger.plan(STREAM, [day(0), day(1), day(2)]) == 3
    assert ledger.plan(STREAM, [day(0), day(1), day(2)]) == 0
    assert ledger.plan(STREAM, [day(2), day(3), day(3)]) == 1
    records = ledger.windows(STREAM)
    assert [r.window for r in records] == [day(0), day(1), day(2), day(3)]
    assert {r.state for r in records} == {"planned"}
    assert ledger.plan("other_stream", [day(0)]) == 1


def test_windows_come_back_in_utc_whatever_offset_they_were_given(ledger: Ledger) -> None:
    plus_five = timezone(timedelta(hours=5))
    ledger.plan(STREAM, [Window(datetime(2024, 1, 1, 5, tzinfo=plus_five), T0 + DAY)])
    (record,) = ledger.windows(STREAM)
    assert record.window == day(0)
    assert record.window.start.utcoffset() == timedelta(0)
    assert record.updated_at.tzinfo is not None


def test_claim_due_takes_the_oldest_windows_up_to_the_limit(ledger: Ledger) -> None:
    ledger.plan(STREAM, [day(3), day(1), day(0), day(2)])
    now = T0 + 10 * DAY
    first = claim(ledger, now, limit=2)
    assert [a.window for a in first] == [day(0), day(1)]
    assert [a.window for a in claim(ledger, now, limit=2)] == [day(2), day(3)]
    assert claim(ledger, now, limit=2) == []
    attempt = first[0]
    assert attempt.attempt == 1
    record = ledger.window(STREAM, day(0))
    assert record is not None
    assert (record.state, record.attempts, record.export_id) == ("requested", 1, attempt.export_id)
    assert (record.requested_at, record.deadline_at) == (now, now + HOUR)


def test_claim_due_stores_only_the_tokens_hash(ledger: Ledger) -> None:
    ledger.plan(STREAM, [day(0), day(1)])
    first, second = claim(ledger, T0 + 10 * DAY)
    assert first.export_id != second.export_id and first.token != second.token
    assert len(first.token) >= 43
    export = ledger.find_export(first.export_id)
    assert export is not None
    assert export.token_sha256 == hashlib.sha256(first.token.encode()).hexdigest()
    assert (export.window_id, export.window, export.attempt) == (first.window_id, day(0), 1)
    assert ledger.find_export("0" * 32) is None


def test_a_timed_out_request_is_made_again_then_fails_after_max_attempts(ledger: Ledger) -> None:
    ledger.plan(STREAM, [day(0)])
    now = T0 + 10 * DAY
    (first,) = claim(ledger, now, max_attempts=2)
    assert claim(ledger, now + HOUR - timedelta(seconds=1), max_attempts=2) == []
    (second,) = claim(ledger, now + HOUR, max_attempts=2)
    assert second.window == day(0)
    assert second.attempt == 2
    assert second.export_id != first.export_id
    assert claim(ledger, now + 2 * HOUR, max_attempts=2) == []
    record = ledger.window(STREAM, day(0))
    assert record is not None
    assert (record.state, record.reason) == ("failed", "no callback after 2 attempts")
    assert [p.window for p in ledger.summary(STREAM).problems] == [day(0)]


def test_request_failed_undoes_the_attempt_until_retry_at(ledger: Ledger) -> None:
    ledger.plan(STREAM, [day(0)])
    now = T0 + 10 * DAY
    (attempt,) = claim(ledger, now)
    ledger.request_failed(attempt.export_id, reason="429 Too Many Requests", retry_at=now + HOUR)
    record = ledger.window(STREAM, day(0))
    assert record is not None
    assert (record.state, record.attempts, record.reason) == ("planned", 0, "429 Too Many Requests")
    assert record.next_request_at == now + HOUR
    assert claim(ledger, now + HOUR - timedelta(seconds=1)) == []
    (again,) = claim(ledger, now + HOUR)
    assert again.attempt == 1
    record = ledger.window(STREAM, day(0))
    assert record is not None and record.reason is None


def test_request_failed_without_retry_fails_the_window(ledger: Ledger) -> None:
    ledger.plan(STREAM, [day(0)])
    (attempt,) = claim(ledger, T0 + 10 * DAY)
    ledger.request_failed(attempt.export_id, reason="401 Unauthorized", retry_at=None)
    record = ledger.window(STREAM, day(0))
    assert record is not None
    assert (record.state, record.attempts, record.reason) == ("failed", 0, "401 Unauthorized")


def test_request_failed_of_a_superseded_attempt_changes_nothing(ledger: Ledger) -> None:
    ledger.plan(STREAM, [day(0)])
    now = T0 + 10 * DAY
    (first,) = claim(ledger, now)
    (second,) = claim(ledger, now + HOUR)
    ledger.request_failed(first.export_id, reason="late refusal", retry_at=None)
    record = ledger.window(STREAM, day(0))
    assert record is not None
    assert (record.state, record.export_id, record.attempts) == ("requested", second.export_id, 2)
    with pytest.raises(LedgerError, match="unknown export id"):
        ledger.request_failed("f" * 32, reason="x", retry_at=None)


def test_replace_with_halves_plans_the_halves_and_is_no_problem(ledger: Ledger) -> None:
    whole = Window(T0, T0 + 2 * DAY)
    ledger.plan(STREAM, [whole])
    (attempt,) = claim(ledger, T0 + 10 * DAY)
    ledger.replace_with_halves(attempt.window_id, (day(0), day(1)), reason="too long")
    record = ledger.window(STREAM, whole)
    assert record is not None
    assert (record.state, record.reason) == (WindowState.SPLIT, "split into halves: too long")
    assert [r.window for r in ledger.windows(STREAM, states=["planned"])] == [day(0), day(1)]
    summary = ledger.summary(STREAM)
    assert summary.problems == []
    assert summary.oldest_uncommitted is not None
    assert summary.oldest_uncommitted.window == day(0)
    with pytest.raises(LedgerError, match="no window with id"):
        ledger.replace_with_halves(9999, (day(0), day(1)), reason="too long")
    with pytest.raises(InvalidTransition, match="cannot take step 'split'"):
        ledger.replace_with_halves(record.id, (day(0), day(1)), reason="again")


def test_force_due_creates_missing_windows_and_makes_them_due_now(ledger: Ledger) -> None:
    now = T0 + 10 * DAY
    assert ledger.force_due(STREAM, [day(0), day(1)], include_committed=False, now=now) == 2
    records = ledger.windows(STREAM)
    assert [(r.window, r.state, r.next_request_at) for r in records] == [
        (day(0), "planned", now),
        (day(1), "planned", now),
    ]
    assert len(claim(ledger, now)) == 2


def test_force_due_gives_failed_windows_fresh_attempts(ledger: Ledger) -> None:
    ledger.plan(STREAM, [day(0)])
    now = T0 + 10 * DAY
    claim(ledger, now, max_attempts=1)
    claim(ledger, now + HOUR, max_attempts=1)
    assert state_of(ledger, day(0)) == "failed"
    assert ledger.force_due(STREAM, [day(0)], include_committed=False, now=now + HOUR) == 1
    record = ledger.window(STREAM, day(0))
    assert record is not None
    assert (record.state, record.attempts, record.reason) == ("planned", 0, None)
    (again,) = claim(ledger, now + HOUR, max_attempts=1)
    assert again.attempt == 1


def test_force_due_leaves_windows_in_flight_alone(ledger: Ledger) -> None:
    ledger.plan(STREAM, [day(0), day(1)])
    now = T0 + 10 * DAY
    _first, second = claim(ledger, now)
    ledger.record_callback(
        export_id=second.export_id,
        callback_id="cb-1",
        received_at=now,
        raw_key="_raw/x.body",
        body_sha256="a" * 64,
        size=10,
    )
    assert ledger.force_due(STREAM, [day(0), day(1)], include_committed=True, now=now) == 0
    assert (state_of(ledger, day(0)), state_of(ledger, day(1))) == ("requested", "received")
    # Once the callback deadline has passed, the request is no longer in flight.
    assert ledger.force_due(STREAM, [day(0)], include_committed=True, now=now + HOUR) == 1
    assert state_of(ledger, day(0)) == "planned"


def test_force_due_touches_committed_windows_only_when_asked(ledger: Ledger) -> None:
    ledger.plan(STREAM, [day(0)])
    now = T0 + 10 * DAY
    (attempt,) = claim(ledger, now)
    ledger.record_callback(
        export_id=attempt.export_id,
        callback_id="cb-1",
        received_at=now,
        raw_key="_raw/x.body",
        body_sha256="a" * 64,
        size=10,
    )
    processing = ledger.claim_received("worker", now, HOUR)
    assert processing is not None
    ledger.commit(processing, rows=5, rejects=0, manifest_key="_manifests/m.json", now=now)
    assert ledger.force_due(STREAM, [day(0)], include_committed=False, now=now) == 0
    assert state_of(ledger, day(0)) == "committed"
    assert ledger.force_due(STREAM, [day(0)], include_committed=True, now=now) == 1
    assert state_of(ledger, day(0)) == "planned"


def test_windows_filters_by_state_and_start(ledger: Ledger) -> None:
    ledger.plan(STREAM, [day(n) for n in range(5)])
    claim(ledger, T0 + 10 * DAY, limit=2)
    assert [r.window for r in ledger.windows(STREAM, states=["requested"])] == [day(0), day(1)]
    assert [r.window for r in ledger.windows(STREAM, since=day(1).start, until=day(3).start)] == [
        day(1),
        day(2),
    ]
    assert ledger.windows(STREAM, states=[]) == []
    assert ledger.windows("unknown") == []


def test_summary_counts_states_and_names_the_edges_and_problems(ledger: Ledger) -> None:
    empty = ledger.summary(STREAM)
    assert empty.by_state == dict.fromkeys(STATES, 0)
    assert (empty.last_committed, empty.oldest_uncommitted, empty.problems) == (None, None, [])

    ledger.plan(STREAM, [day(n) for n in range(4)])
    now = T0 + 10 * DAY
    first, second, third, _ = claim(ledger, now)
    for number, attempt in enumerate((first, second, third)):
        ledger.record_callback(
            export_id=attempt.export_id,
            callback_id=f"cb-{number}",
            received_at=now,
            raw_key=f"_raw/{number}.body",
            body_sha256=str(number) * 64,
            size=10,
        )
    for _ in range(2):
        processing = ledger.claim_received("worker", now, HOUR)
        assert processing is not None
        ledger.commit(processing, rows=3, rejects=1, manifest_key="m", now=now)
    processing = ledger.claim_received("worker", now, HOUR)
    assert processing is not None
    ledger.quarantine(processing, reason="no decoder recognised the callback", now=now)

    summary = ledger.summary(STREAM)
    counts = ledger.state_counts(STREAM)
    assert counts.by_state == summary.by_state
    assert counts.last_committed == summary.last_committed
    assert summary.by_state == {
        "planned": 0,
        "requested": 1,
        "received": 0,
        "committed": 2,
        "failed": 0,
        "quarantined": 1,
        "split": 0,
        "replaced": 0,
    }
    assert summary.last_committed is not None and summary.last_committed.window == day(1)
    assert (summary.last_committed.rows, summary.last_committed.rejects) == (3, 1)
    assert summary.oldest_uncommitted is not None
    assert summary.oldest_uncommitted.window == day(2)
    assert [(p.window, p.state, p.reason) for p in summary.problems] == [
        (day(2), "quarantined", "no decoder recognised the callback")
    ]


def test_a_ledger_that_stored_split_as_failed_is_migrated_to_split(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/old.db"
    with Ledger.open(url) as ledger:
        ledger.plan(STREAM, [day(0), day(1)])
        ledger.set_meta("schema_version", "1")
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE ledger_windows SET state = 'failed', reason = 'split into halves' "
                "WHERE id = (SELECT min(id) FROM ledger_windows)"
            )
        )
    engine.dispose()
    with Ledger.open(url) as ledger:
        assert [r.state for r in ledger.windows(STREAM)] == [WindowState.SPLIT, "planned"]
        assert ledger.get_meta("schema_version") == str(LEDGER_SCHEMA_VERSION)
        assert ledger.summary(STREAM).problems == []


def test_a_split_after_a_callback_arrived_leaves_the_window_whole(ledger: Ledger) -> None:
    whole = Window(T0, T0 + 2 * DAY)
    ledger.plan(STREAM, [whole])
    (attempt,) = claim(ledger, T0 + 10 * DAY)
    ledger.record_callback(
        export_id=attempt.export_id,
        callback_id="cb",
        received_at=T0 + 10 * DAY,
        raw_key="_raw/cb.body",
        body_sha256="a" * 64,
        size=1,
    )
    ledger.replace_with_halves(attempt.window_id, (day(0), day(1)), reason="too long")
    assert [(r.window, r.state) for r in ledger.windows(STREAM)] == [(whole, "received")]


def test_move_many_moves_every_window_in_one_statement_or_none(ledger_url: str) -> None:
    with Ledger.open(ledger_url) as ledger:
        ledger.plan(STREAM, [day(0), day(1)])
        first, second = claim(ledger, T0 + 10 * DAY)
        ids = [first.window_id, second.window_id]
        database = Database(ledger_url)
        try:
            with database.write() as conn:
                rows = lock_windows(conn, ids)
                moves = [Move(rows[i], rows[i].state, T0 + 10 * DAY, {}) for i in ids]
                # One window twice: the second move starts where the first left it.
                moves.append(Move(rows[ids[0]], WindowState.RECEIVED, T0 + 11 * DAY, {}))
                move_many(conn, Step.RECEIVE, moves)
            assert state_of(ledger, day(0)) == state_of(ledger, day(1)) == WindowState.RECEIVED
            refused = pytest.raises(InvalidTransition, match="1 of 2 windows left their state")
            with refused, database.write() as conn:
                rows = lock_windows(conn, ids)
                left = Move(rows[ids[1]], WindowState.REQUESTED, T0, {})  # it is received
                move_many(
                    conn, Step.RECEIVE, [Move(rows[ids[0]], rows[ids[0]].state, T0, {}), left]
                )
            record = ledger.window(STREAM, day(0))
            assert record is not None and record.updated_at == T0 + 11 * DAY  # rolled back
        finally:
            database.close()
