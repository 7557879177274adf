"""The ledger's callbacks, processing leases and replays, on SQLite and on a real Postgres."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from storage.layout import Window
from storage.ledger import ExportAttempt, Ledger, LedgerError, ProcessingClaim

STREAM = "chat_messages"
T0 = datetime(2024, 1, 1, tzinfo=UTC)
NOW = T0 + timedelta(days=10)
DAY = timedelta(days=1)
HOUR = timedelta(hours=1)
LEASE = timedelta(minutes=5)


def day(n: int) -> Window:
    return Window(T0 + n * DAY, T0 + (n + 1) * DAY)


def requested(ledger: Ledger, *windows: Window, now: datetime = NOW) -> list[ExportAttempt]:
    ledger.plan(STREAM, list(windows))
    return ledger.claim_due(STREAM, now, limit=10, callback_timeout=HOUR, max_attempts=3)


def callback(
    ledger: Ledger, export_id: str, callback_id: str, body: str = "body", at: datetime = NOW
) -> str:
    return ledger.record_callback(
        export_id=export_id,
        callback_id=callback_id,
        received_at=at,
        raw_key=f"_raw/{export_id}/{callback_id}.body",
        body_sha256=body * (64 // len(body)),
        size=len(body),
    )


def processing(ledger: Ledger, owner: str = "worker-1", now: datetime = NOW) -> ProcessingClaim:
    claimed = ledger.claim_received(owner, now, LEASE)
    assert claimed is not None
    return claimed


def states(ledger: Ledger, export_id: str) -> list[str]:
    return [record.state for record in ledger.callbacks(export_id)]


def window_state(ledger: Ledger, window: Window) -> tuple[str, str | None]:
    record = ledger.window(STREAM, window)
    assert record is not None
    return record.state, record.reason


def test_an_accepted_callback_is_stored_pending_and_the_window_received(ledger: Ledger) -> None:
    (attempt,) = requested(ledger, day(0))
    assert callback(ledger, attempt.export_id, "cb-1", at=NOW + LEASE) == "accepted"
    assert window_state(ledger, day(0)) == ("received", None)
    (stored,) = ledger.callbacks(attempt.export_id)
    assert (stored.callback_id, stored.state, stored.size) == ("cb-1", "pending", 4)
    assert stored.raw_key == f"_raw/{attempt.export_id}/cb-1.body"
    assert stored.received_at == NOW + LEASE
    assert stored.received_at.utcoffset() == timedelta(0)


def test_a_callback_for_an_unknown_export_is_refused(ledger: Ledger) -> None:
    with pytest.raises(LedgerError, match="unknown export id"):
        callback(ledger, "0" * 32, "cb-1")


def test_the_same_body_again_is_a_duplicate_and_stored(ledger: Ledger) -> None:
    (attempt,) = requested(ledger, day(0))
    assert callback(ledger, attempt.export_id, "cb-1") == "accepted"
    assert callback(ledger, attempt.export_id, "cb-2") == "duplicate"
    assert states(ledger, attempt.export_id) == ["pending", "duplicate"]


def test_a_different_body_is_accepted_and_the_newest_is_processed(ledger: Ledger) -> None:
    (attempt,) = requested(ledger, day(0))
    assert callback(ledger, attempt.export_id, "cb-1", body="a") == "accepted"
    assert callback(ledger, attempt.export_id, "cb-2", body="b") == "accepted"
    claimed = processing(ledger)
    assert (claimed.callback_id, claimed.export_id, claimed.attempt) == (
        "cb-2",
        attempt.export_id,
        1,
    )
    ledger.commit(claimed, rows=10, rejects=0, manifest_key="m.json", now=NOW)
    assert states(ledger, attempt.export_id) == ["superseded", "processed"]


def test_a_late_callback_of_an_earlier_attempt_is_accepted(ledger: Ledger) -> None:
    (first,) = requested(ledger, day(0))
    (second,) = ledger.claim_due(
        STREAM, NOW + HOUR, limit=10, callback_timeout=HOUR, max_attempts=3
    )
    assert second.export_id != first.export_id
    assert callback(ledger, first.export_id, "late", at=NOW + 90 * timedelta(minutes=1)) == (
        "accepted"
    )
    assert window_state(ledger, day(0)) == ("received", None)
    claimed = processing(ledger, now=NOW + 2 * HOUR)
    assert (claimed.export_id, claimed.attempt) == (first.export_id, 1)
    # The received window is not requested again when the second attempt's deadline passes.
    assert (
        ledger.claim_due(STREAM, NOW + 3 * HOUR, limit=10, callback_timeout=HOUR, max_attempts=3)
        == []
    )


def test_a_callback_for_a_committed_window_is_a_duplicate(ledger: Ledger) -> None:
    (attempt,) = requested(ledger, day(0))
    callback(ledger, attempt.export_id, "cb-1", body="a")
    ledger.commit(processing(ledger), rows=1, rejects=0, manifest_key="m.json", now=NOW)
    assert callback(ledger, attempt.export_id, "cb-2", body="b") == "duplicate"
    assert window_state(ledger, day(0)) == ("committed", None)
    assert states(ledger, attempt.export_id) == ["processed", "duplicate"]


def test_a_lease_keeps_other_workers_off_until_it_expires(ledger: Ledger) -> None:
    (attempt,) = requested(ledger, day(0))
    callback(ledger, attempt.export_id, "cb-1")
    first = processing(ledger, "worker-1")
    assert ledger.claim_received("worker-2", NOW + LEASE - timedelta(seconds=1), LEASE) is None
    assert ledger.renew_lease(first.window_id, "worker-1", NOW + 2 * LEASE)
    assert ledger.claim_received("worker-2", NOW + LEASE, LEASE) is None
    taken = ledger.claim_received("worker-2", NOW + 2 * LEASE, LEASE)
    assert taken is not None and taken.callback_id == "cb-1"
    assert not ledger.renew_lease(first.window_id, "worker-1", NOW + 3 * LEASE)
    assert ledger.renew_lease(taken.window_id, "worker-2", NOW + 3 * LEASE)


def test_release_lets_another_worker_claim_at_once(ledger: Ledger) -> None:
    (attempt,) = requested(ledger, day(0))
    callback(ledger, attempt.export_id, "cb-1")
    first = processing(ledger, "worker-1")
    ledger.release(first.window_id, "worker-2")
    assert ledger.claim_received("worker-2", NOW, LEASE) is None
    ledger.release(first.window_id, "worker-1")
    assert window_state(ledger, day(0)) == ("received", None)
    assert processing(ledger, "worker-2").window == day(0)


def test_claim_received_takes_the_oldest_window_and_nothing_without_callbacks(
    ledger: Ledger,
) -> None:
    assert ledger.claim_received("worker-1", NOW, LEASE) is None
    first, second = requested(ledger, day(0), day(1))
    callback(ledger, second.export_id, "cb-2", body="b")
    callback(ledger, first.export_id, "cb-1", body="a")
    assert processing(ledger, "worker-1").window == day(0)
    assert processing(ledger, "worker-2").window == day(1)
    assert ledger.claim_received("worker-3", NOW, LEASE) is None


def test_commit_records_the_result_and_clears_the_lease(ledger: Ledger) -> None:
    (attempt,) = requested(ledger, day(0))
    callback(ledger, attempt.export_id, "cb-1")
    claimed = processing(ledger)
    ledger.commit(claimed, rows=120, rejects=2, manifest_key="_manifests/x.json", now=NOW + LEASE)
    record = ledger.window(STREAM, day(0))
    assert record is not None
    assert (record.state, record.rows, record.rejects) == ("committed", 120, 2)
    assert (record.committed_at, record.export_id) == (NOW + LEASE, attempt.export_id)
    assert record.manifest_key == "_manifests/x.json"
    assert states(ledger, attempt.export_id) == ["processed"]
    assert ledger.claim_received("worker-2", NOW + LEASE, LEASE) is None


def test_quarantine_marks_the_window_and_keeps_the_callback(ledger: Ledger) -> None:
    (attempt,) = requested(ledger, day(0))
    callback(ledger, attempt.export_id, "cb-1")
    ledger.quarantine(processing(ledger), reason="unrecognised payload", now=NOW)
    assert window_state(ledger, day(0)) == ("quarantined", "unrecognised payload")
    (stored,) = ledger.callbacks(attempt.export_id)
    assert (stored.state, stored.reason) == ("quarantined", "unrecognised payload")
    assert ledger.claim_received("worker-2", NOW, LEASE) is None


def test_quarantine_with_another_pending_callback_keeps_the_window_received(
    ledger: Ledger,
) -> None:
    (attempt,) = requested(ledger, day(0))
    callback(ledger, attempt.export_id, "cb-1", body="a")
    claimed = processing(ledger)
    callback(ledger, attempt.export_id, "cb-2", body="b")
    ledger.quarantine(claimed, reason="unrecognised payload", now=NOW)
    assert window_state(ledger, day(0)) == ("received", None)
    assert processing(ledger, "worker-2").callback_id == "cb-2"


def test_attempt_failed_requests_the_window_again_at_retry_at(ledger: Ledger) -> None:
    (attempt,) = requested(ledger, day(0))
    callback(ledger, attempt.export_id, "cb-1")
    retry_at = NOW + HOUR
    ledger.attempt_failed(
        processing(ledger),
        reason="export failed upstream",
        now=NOW,
        max_attempts=3,
        retry_at=retry_at,
    )
    record = ledger.window(STREAM, day(0))
    assert record is not None
    assert (record.state, record.reason, record.next_request_at) == (
        "planned",
        "export failed upstream",
        retry_at,
    )
    assert states(ledger, attempt.export_id) == ["failed"]
    claim_due = ledger.claim_due
    assert claim_due(STREAM, retry_at - LEASE, limit=5, callback_timeout=HOUR, max_attempts=3) == []
    (again,) = claim_due(STREAM, retry_at, limit=5, callback_timeout=HOUR, max_attempts=3)
    assert again.attempt == 2


def test_attempt_failed_on_the_last_attempt_fails_the_window(ledger: Ledger) -> None:
    (attempt,) = requested(ledger, day(0))
    callback(ledger, attempt.export_id, "cb-1")
    ledger.attempt_failed(
        processing(ledger), reason="download link expired", now=NOW, max_attempts=1, retry_at=NOW
    )
    assert window_state(ledger, day(0)) == ("failed", "download link expired")
    assert [p.window for p in ledger.summary(STREAM).problems] == [day(0)]


def test_requeue_of_an_export_processes_its_newest_callback_again(ledger: Ledger) -> None:
    (attempt,) = requested(ledger, day(0))
    callback(ledger, attempt.export_id, "cb-1", body="a")
    callback(ledger, attempt.export_id, "cb-2", body="b")
    ledger.commit(processing(ledger), rows=1, rejects=0, manifest_key="m.json", now=NOW)
    assert ledger.requeue(export_id=attempt.export_id) == 1
    assert window_state(ledger, day(0)) == ("received", None)
    assert states(ledger, attempt.export_id) == ["superseded", "pending"]
    assert processing(ledger).callback_id == "cb-2"


def test_requeue_refuses_an_unknown_export_and_an_empty_request(ledger: Ledger) -> None:
    with pytest.raises(LedgerError, match="unknown export id"):
        ledger.requeue(export_id="0" * 32)
    with pytest.raises(LedgerError, match="nothing to replay"):
        ledger.requeue()


def test_requeue_of_an_export_without_callbacks_requeues_nothing(ledger: Ledger) -> None:
    (attempt,) = requested(ledger, day(0))
    assert ledger.requeue(export_id=attempt.export_id) == 0
    assert window_state(ledger, day(0)) == ("requested", None)


def test_requeue_quarantined_brings_back_every_quarantined_window(ledger: Ledger) -> None:
    attempts = requested(ledger, day(0), day(1), day(2))
    for number, attempt in enumerate(attempts):
        callback(ledger, attempt.export_id, f"cb-{number}", body=str(number))
    for _ in range(2):
        ledger.quarantine(processing(ledger), reason="unrecognised payload", now=NOW)
    ledger.commit(processing(ledger), rows=1, rejects=0, manifest_key="m.json", now=NOW)
    assert ledger.requeue(quarantined=True) == 2
    assert [window_state(ledger, day(n))[0] for n in range(3)] == [
        "received",
        "received",
        "committed",
    ]
    assert states(ledger, attempts[0].export_id) == ["pending"]
    assert ledger.requeue(quarantined=True) == 0
