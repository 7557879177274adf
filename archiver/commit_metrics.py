"""Lag and last commit as gauges that exist from the first scrape.

Before the first commit the lag counts from where archiving started (ARCHIVER_START, or the
ledger's creation), so "nothing has ever been archived" raises the lag alert like a stall does,
and the last-commit timestamp is 0.
"""

from __future__ import annotations

from datetime import datetime

from prometheus_client.core import GaugeMetricFamily

from storage.ledger import Summary


def commit_families(summary: Summary, now: datetime, start: datetime) -> list[GaugeMetricFamily]:
    last = summary.last_committed
    lag = GaugeMetricFamily(
        "archiver_lag_seconds",
        "Seconds since the end of the last committed window; before the first commit, since "
        "ARCHIVER_START or the ledger's creation.",
    )
    since = last.window.end if last is not None else start
    lag.add_metric([], max((now - since).total_seconds(), 0.0))
    committed = GaugeMetricFamily(
        "archiver_last_commit_timestamp_seconds",
        "When the newest committed window was committed (Unix time); 0 before the first commit.",
    )
    at = last.committed_at if last is not None else None
    committed.add_metric([], at.timestamp() if at is not None else 0.0)
    return [lag, committed]
