"""Callbacks recorded a group at a time: each caller gets its own outcome, a burst shares a few
transactions, and a failing group fails its own callers only. SQLite and a real Postgres."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from receiver.lanes import Lane, LaneTimeout
from receiver.recorder import CallbackRecorder
from storage.errors import ErrorKind
from storage.layout import Window
from storage.ledger import CallbackReceipt, ExportAttempt, Ledger, LedgerError
from storage.ledger.recording import CallbackOutcome

STREAM = "chat_messages"
T0 = datetime(2024, 1, 1, tzinfo=UTC)
NOW = T0 + timedelta(days=60)


class CountingLedger(Ledger):
    """The real ledger, counting the transactions that record callbacks."""

    groups: list[int]

    def record_callbacks(
        self, receipts: Sequence[CallbackReceipt]
    ) -> list[CallbackOutcome | LedgerError]:
        self.groups.append(len(receipts))
        return super().record_callbacks(receipts)


@pytest.fixture
def ledger(ledger_url: str) -> Iterator[CountingLedger]:
    opened = CountingLedger.open(ledger_url)
    opened.groups = []
    try:
        yield opened
    finally:
        opened.close()


def requested(ledger: Ledger, count: int) -> list[ExportAttempt]:
    windows = [
        Window(T0 + n * timedelta(days=1), T0 + (n + 1) * timedelta(days=1)) for n in range(count)
    ]
    ledger.plan(STREAM, windows)
    return ledger.claim_due(
        STREAM, NOW, limit=count, callback_timeout=timedelta(hours=1), max_attempts=3
    )


def receipt(export_id: str, number: int, body: str = "a") -> CallbackReceipt:
    return CallbackReceipt(
        export_id=export_id,
        callback_id=f"cb-{number}",
        received_at=NOW,
        raw_key=f"_raw/{export_id}/cb-{number}.body",
        body_sha256=body * 64,
        size=1,
    )


async def record_all(
    recorder: CallbackRecorder, receipts: list[CallbackReceipt]
) -> list[CallbackOutcome | BaseException]:
    return await asyncio.gather(*(recorder.record(r) for r in receipts), return_exceptions=True)


def test_a_burst_of_callbacks_shares_a_few_transactions_and_each_gets_its_outcome(
    ledger: CountingLedger,
) -> None:
    attempts = requested(ledger, 40)
    recorder = CallbackRecorder(ledger, Lane("record-test", 1), timeout=10)
    receipts = [receipt(attempt.export_id, n) for n, attempt in enumerate(attempts)]
    outcomes = asyncio.run(record_all(recorder, receipts))
    assert outcomes == ["accepted"] * 40
    assert sum(ledger.groups) == 40
    assert len(ledger.groups) <= 2  # the first alone, the rest waiting behind it
    for attempt in attempts:
        assert [c.state for c in ledger.callbacks(attempt.export_id)] == ["pending"]


def test_an_unknown_export_fails_its_own_callback_and_not_the_rest_of_its_group(
    ledger: CountingLedger,
) -> None:
    attempts = requested(ledger, 3)
    recorder = CallbackRecorder(ledger, Lane("record-test", 1), timeout=10)
    receipts = [receipt(attempts[0].export_id, 0), receipt("f" * 32, 1)]
    receipts += [receipt(attempt.export_id, n + 2) for n, attempt in enumerate(attempts[1:])]
    outcomes = asyncio.run(record_all(recorder, receipts))
    assert outcomes[0] == outcomes[2] == outcomes[3] == "accepted"
    assert isinstance(outcomes[1], LedgerError) and outcomes[1].kind is ErrorKind.USER


def test_the_same_body_twice_in_one_group_is_accepted_once(ledger: CountingLedger) -> None:
    (attempt,) = requested(ledger, 1)
    recorder = CallbackRecorder(ledger, Lane("record-test", 1), timeout=10)
    same = [receipt(attempt.export_id, n, body="b") for n in range(3)]
    outcomes = asyncio.run(record_all(recorder, [receipt(attempt.export_id, 9, "c"), *same]))
    assert outcomes == ["accepted", "accepted", "duplicate", "duplicate"]


def test_a_stalled_ledger_fails_the_group_in_time_and_the_next_group_is_recorded(
    tmp_path: Path,
) -> None:
    path = tmp_path / "ledger.db"  # the stall: another connection holds SQLite's write lock
    ledger = Ledger.open(f"sqlite:///{path}")
    attempts = requested(ledger, 2)
    recorder = CallbackRecorder(ledger, Lane("record-test", 1, 1), timeout=0.5)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")

    async def stalled_then_free() -> tuple[BaseException | str, str]:
        first = await asyncio.gather(
            recorder.record(receipt(attempts[0].export_id, 0)), return_exceptions=True
        )
        holder.execute("ROLLBACK")
        # The stalled call keeps the lane's thread until SQLite's busy wait lets it through.
        while True:
            try:
                return first[0], await recorder.record(receipt(attempts[1].export_id, 1))
            except LaneTimeout:
                continue

    try:
        failed, recorded = asyncio.run(stalled_then_free())
    finally:
        holder.close()
        ledger.close()
    assert isinstance(failed, LaneTimeout)
    assert recorded == "accepted"
