"""What recording a callback in the ledger costs, alone and in groups.

Intake records the callbacks that arrive while one group is written as the next group, in one
transaction (`receiver/recorder.py`): on SQLite only one write transaction runs at a time, so
how long a group holds it sets how fast a burst is recorded. Each row here records the same
number of callbacks of requested exports (each its own window, as in a backfill's burst), one
transaction per group, uncontended; the baseline is one callback per transaction. Target: in
groups of 50, a callback costs at most a quarter of one recorded alone. Exits 1 if not.

    python bench/recording.py                      # SQLite, in a temporary directory
    python bench/recording.py --ledger-url postgresql+psycopg://postgres@127.0.0.1:5432/bench
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from benchlib import exit_status, print_table

from storage.layout import Window
from storage.ledger import CallbackReceipt, ExportAttempt, Ledger
from storage.schema import STREAM

GROUP_SIZES = (1, 12, 50)
CALLBACKS = 600  # per group size and run
TARGET_RATIO = 0.25
START = datetime(2024, 1, 1, tzinfo=UTC)


def _requested(ledger: Ledger, count: int, first: int) -> list[ExportAttempt]:
    width = timedelta(minutes=1)
    windows = [
        Window(START + (first + i) * width, START + (first + i + 1) * width) for i in range(count)
    ]
    ledger.plan(STREAM, windows)
    now = datetime.now(UTC)
    ledger.force_due(STREAM, windows, include_committed=True, now=now)
    return ledger.claim_due(
        STREAM, now, limit=count, callback_timeout=timedelta(days=30), max_attempts=5
    )


def _seconds_per_callback(ledger: Ledger, attempts: list[ExportAttempt], group: int) -> float:
    received = datetime.now(UTC)
    receipts = [
        CallbackReceipt(
            attempt.export_id,
            f"bench-{attempt.export_id}",
            received,
            f"_raw/{attempt.export_id}/bench.body",
            attempt.export_id * 2,
            300,
        )
        for attempt in attempts
    ]
    started = time.perf_counter()
    for offset in range(0, len(receipts), group):
        outcomes = ledger.record_callbacks(receipts[offset : offset + group])
        if any(outcome != "accepted" for outcome in outcomes):
            raise SystemExit(f"unexpected outcomes: {outcomes}")
    return (time.perf_counter() - started) / len(receipts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ledger-url", help="an empty ledger to use (default: a new SQLite file)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per group size (default 3)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-recording-") as tmp:
        url = args.ledger_url or f"sqlite:///{Path(tmp) / 'ledger.db'}"
        with Ledger.open(url) as ledger:
            costs: dict[int, list[float]] = {size: [] for size in GROUP_SIZES}
            first = 0
            _seconds_per_callback(ledger, _requested(ledger, 50, first), 50)  # warm-up
            first += 50
            for _ in range(args.repeat):
                for size in GROUP_SIZES:
                    attempts = _requested(ledger, CALLBACKS, first)
                    first += CALLBACKS
                    costs[size].append(_seconds_per_callback(ledger, attempts, size))
    alone = statistics.median(costs[1])
    rows = []
    for size in GROUP_SIZES:
        median = statistics.median(costs[size])
        spread = f"{min(costs[size]) * 1e6:.0f}-{max(costs[size]) * 1e6:.0f}"
        rows.append(
            [
                str(size),
                f"{median * size * 1e3:.2f}",
                f"{median * 1e6:.0f}",
                spread,
                f"{median / alone:.2f}x",
            ]
        )
    print(f"recording {CALLBACKS} callbacks per run, median of {args.repeat} runs")
    print_table(["group", "ms a group", "us a callback", "range", "vs alone"], rows)
    ratio = statistics.median(costs[GROUP_SIZES[-1]]) / alone
    missed = [f"groups of {GROUP_SIZES[-1]} at {ratio:.2f}x"] if ratio > TARGET_RATIO else []
    return exit_status(missed)


if __name__ == "__main__":
    sys.exit(main())
