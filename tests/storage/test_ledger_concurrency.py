"""The ledger under concurrent use: threads, replicas and a CLI beside `serve`."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

from sqlalchemy import create_engine, event, text

from storage.layout import Window
from storage.ledger import CallbackReceipt, Ledger
from storage.ledger.connect import POOL_SIZE, Database
from storage.ledger.tables import LEDGER_SCHEMA_VERSION

STREAM = "chat_messages"
T0 = datetime(2024, 1, 1, tzinfo=UTC)
NOW = T0 + timedelta(days=400)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)

Result = TypeVar("Result")


def day(n: int) -> Window:
    return Window(T0 + n * DAY, T0 + (n + 1) * DAY)


def all_at_once(count: int, work: Callable[[int], Result]) -> list[Result]:
    """Runs `work(0..count-1)` on `count` threads released together."""
    barrier = threading.Barrier(count)

    def run(number: int) -> Result:
        barrier.wait(timeout=30)
        return work(number)

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(run, range(count)))


def test_ten_identical_callbacks_at_once_accept_exactly_one(ledger: Ledger) -> None:
    ledger.plan(STREAM, [day(0)])
    (attempt,) = ledger.claim_due(STREAM, NOW, limit=1, callback_timeout=HOUR, max_attempts=3)

    def deliver(number: int) -> str:
        return ledger.record_callback(
            export_id=attempt.export_id,
            callback_id=f"cb-{number}",
            received_at=NOW,
            raw_key=f"_raw/{number}.body",
            body_sha256="e" * 64,
            size=100,
        )

    outcomes = Counter(all_at_once(10, deliver))
    assert outcomes == {"accepted": 1, "duplicate": 9}
    stored = Counter(record.state for record in ledger.callbacks(attempt.export_id))
    assert stored == {"pending": 1, "duplicate": 9}


def test_replicas_claiming_at_once_never_request_a_window_twice(ledger_url: str) -> None:
    replicas = [Ledger.open(ledger_url), Ledger.open(ledger_url)]
    try:
        replicas[0].plan(STREAM, [day(n) for n in range(30)])

        def drain(number: int) -> list[int]:
            ledger = replicas[number % 2]
            claimed: list[int] = []
            while batch := ledger.claim_due(
                STREAM, NOW, limit=2, callback_timeout=HOUR, max_attempts=3
            ):
                claimed.extend(attempt.window_id for attempt in batch)
            return claimed

        claimed = [window_id for batch in all_at_once(4, drain) for window_id in batch]
        assert len(claimed) == 30
        assert len(set(claimed)) == 30
        assert {r.state for r in replicas[1].windows(STREAM)} == {"requested"}
    finally:
        for replica in replicas:
            replica.close()


def test_workers_claiming_at_once_process_each_window_once(ledger: Ledger) -> None:
    ledger.plan(STREAM, [day(n) for n in range(8)])
    attempts = ledger.claim_due(STREAM, NOW, limit=8, callback_timeout=HOUR, max_attempts=3)
    for number, attempt in enumerate(attempts):
        ledger.record_callback(
            export_id=attempt.export_id,
            callback_id=f"cb-{number}",
            received_at=NOW,
            raw_key=f"_raw/{number}.body",
            body_sha256=f"{number:064d}",
            size=1,
        )

    def work(number: int) -> list[int]:
        done = []
        while claim := ledger.claim_received(f"worker-{number}", NOW, timedelta(minutes=5)):
            ledger.commit(claim, rows=1, rejects=0, manifest_key="m.json", now=NOW)
            done.append(claim.window_id)
        return done

    processed = [window_id for done in all_at_once(4, work) for window_id in done]
    assert sorted(processed) == sorted(attempt.window_id for attempt in attempts)
    assert ledger.summary(STREAM).by_state["committed"] == 8


def test_planning_at_once_inserts_each_window_once(ledger: Ledger) -> None:
    windows = [day(n) for n in range(50)]
    added = all_at_once(4, lambda _: ledger.plan(STREAM, windows))
    assert sum(added) == 50
    assert [r.window for r in ledger.windows(STREAM)] == windows


def test_processes_opening_a_new_ledger_at_once_share_one_schema(ledger_url: str) -> None:
    opened = all_at_once(4, lambda _: Ledger.open(ledger_url))
    try:
        assert len({ledger.created_at() for ledger in opened}) == 1
        assert {ledger.get_meta("schema_version") for ledger in opened} == {
            str(LEDGER_SCHEMA_VERSION)
        }
    finally:
        for ledger in opened:
            ledger.close()


def test_claiming_skips_a_window_another_replica_holds_locked(fresh_postgres_url: str) -> None:
    ledger = Ledger.open(fresh_postgres_url)
    other = create_engine(fresh_postgres_url)
    try:
        ledger.plan(STREAM, [day(0), day(1)])
        with other.connect() as conn:
            conn.execute(
                text("SELECT id FROM ledger_windows WHERE window_start = :start FOR UPDATE"),
                {"start": day(0).start},
            )
            # Held by the other connection's open transaction: claiming must not wait for it.
            with ThreadPoolExecutor(max_workers=1) as pool:
                future = pool.submit(
                    ledger.claim_due, STREAM, NOW, limit=2, callback_timeout=HOUR, max_attempts=3
                )
                try:
                    claimed = future.result(timeout=20)
                finally:
                    conn.rollback()
        assert [attempt.window for attempt in claimed] == [day(1)]
        (rest,) = ledger.claim_due(STREAM, NOW, limit=2, callback_timeout=HOUR, max_attempts=3)
        assert rest.window == day(0)
    finally:
        other.dispose()
        ledger.close()


def test_a_serve_process_and_a_cli_command_share_one_sqlite_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'archiver.db'}"
    serve, cli = Ledger.open(url), Ledger.open(url)
    try:
        serve.plan(STREAM, [day(n) for n in range(20)])
        attempts = serve.claim_due(STREAM, NOW, limit=20, callback_timeout=HOUR, max_attempts=3)

        def receive() -> None:
            for number, attempt in enumerate(attempts):
                serve.record_callback(
                    export_id=attempt.export_id,
                    callback_id=f"cb-{number}",
                    received_at=NOW,
                    raw_key=f"_raw/{number}.body",
                    body_sha256=f"{number:064d}",
                    size=1,
                )

        def backfill() -> None:
            for number in range(20, 40):
                cli.force_due(STREAM, [day(number)], include_committed=False, now=NOW)
                cli.summary(STREAM)

        with ThreadPoolExecutor(max_workers=2) as pool:
            for future in [pool.submit(receive), pool.submit(backfill)]:
                future.result(timeout=60)

        by_state = cli.summary(STREAM).by_state
        assert (by_state["received"], by_state["planned"]) == (20, 20)
        claim = cli.claim_received("replay", NOW, timedelta(minutes=5))
        assert claim is not None
        assert serve.claim_received("worker", NOW, timedelta(minutes=5)) is not None
        assert serve.claim_received("worker", NOW, timedelta(minutes=5)) != claim
    finally:
        serve.close()
        cli.close()


def test_an_in_memory_ledger_serves_several_threads() -> None:
    with Ledger.open("sqlite://") as ledger:
        windows = [day(n) for n in range(12)]
        assert sum(all_at_once(4, lambda _: ledger.plan(STREAM, windows))) == 12
        claimed = all_at_once(
            4,
            lambda _: ledger.claim_due(STREAM, NOW, limit=3, callback_timeout=HOUR, max_attempts=3),
        )
        assert sorted(a.window_id for batch in claimed for a in batch) == list(range(1, 13))


def test_as_many_threads_as_serve_runs_keep_their_connections(ledger_url: str) -> None:
    """A burst of callbacks looks the ledger up from every intake thread at once: each keeps
    its connection, instead of opening and setting up one per call past a narrow pool."""
    database = Database(ledger_url)
    opened = 0

    def count(_dbapi_connection: object, _record: object) -> None:
        nonlocal opened
        opened += 1

    event.listen(database.engine, "connect", count)
    threads = 12
    try:
        for _ in range(5):
            all_at_once(threads, lambda _n: [_read_one(database) for _ in range(10)])
    finally:
        database.close()
    assert opened <= threads
    assert threads <= POOL_SIZE


def _read_one(database: Database) -> object:
    with database.read() as conn:
        return conn.scalar(text("SELECT 1"))


def test_two_replicas_recording_groups_of_the_same_windows_never_deadlock(
    fresh_postgres_url: str,
) -> None:
    """Each group names the windows in the opposite order; locked in that order, two of them at
    once would each hold a window the other waits for, and Postgres would abort one."""
    replicas = [Ledger.open(fresh_postgres_url) for _ in range(2)]
    try:
        replicas[0].plan(STREAM, [day(n) for n in range(8)])
        attempts = replicas[0].claim_due(
            STREAM, NOW, limit=8, callback_timeout=HOUR, max_attempts=3
        )
        for round_number in range(10):

            def deliver(replica: int, round_number: int = round_number) -> list[object]:
                order = attempts if replica == 0 else attempts[::-1]
                receipts = [
                    CallbackReceipt(
                        export_id=attempt.export_id,
                        callback_id=f"cb-{round_number}-{replica}-{number}",
                        received_at=NOW,
                        raw_key=f"_raw/{round_number}-{replica}-{number}.body",
                        body_sha256=f"{round_number:02d}{replica}{number:061d}",
                        size=1,
                    )
                    for number, attempt in enumerate(order)
                ]
                return list(replicas[replica].record_callbacks(receipts))

            for outcomes in all_at_once(2, deliver):
                assert all(isinstance(outcome, str) for outcome in outcomes), outcomes
    finally:
        for replica in replicas:
            replica.close()
