"""Gauges read from the ledger, so every replica reports the shared truth.

A scrape never waits on the ledger for long: the summary is read in a thread of its own, and
a scrape (rendered off the event loop) waits for that read at most half a second. A healthy
ledger answers in milliseconds, so the gauges are fresh; a stalled one leaves the last values
in place, and `archiver_ledger_summary_age_seconds` says how old they are, so a ledger stall
shows as a growing age instead of a frozen process. Concurrent scrapes share one read.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime

from prometheus_client import REGISTRY
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from archiver.commit_metrics import commit_families
from storage.ledger import Ledger, Summary
from storage.lifecycle import STATES
from storage.schema import STREAM

log = logging.getLogger("chat_archiver.metrics")

SCRAPE_WAIT_SECONDS = 1.5


class LedgerCollector(Collector):
    def __init__(
        self,
        ledger: Ledger,
        start: datetime,
        stream: str = STREAM,
        *,
        scrape_wait: float = SCRAPE_WAIT_SECONDS,
    ) -> None:
        self._ledger = ledger
        self._stream = stream
        self._start = start
        self._scrape_wait = scrape_wait
        self._lock = threading.Lock()
        self._summary: Summary | None = None
        self._refreshed_at: float | None = None
        self._refreshed = threading.Event()
        self._refreshing = False

    def refresh_soon(self) -> threading.Event:
        """Starts a refresh unless one is running; the event is set when it ends."""
        with self._lock:
            if self._refreshing:
                return self._refreshed
            self._refreshing = True
            self._refreshed = threading.Event()
            done = self._refreshed
        threading.Thread(
            target=self._refresh, args=(done,), name="metrics-ledger", daemon=True
        ).start()
        return done

    def _refresh(self, done: threading.Event) -> None:
        try:
            summary = self._ledger.state_counts(self._stream)
        except Exception as error:  # noqa: BLE001 - a scrape must not fail with the ledger
            log.warning("metrics_ledger_unreachable", extra={"reason": str(error)})
        else:
            with self._lock:
                self._summary = summary
                self._refreshed_at = time.monotonic()
        finally:
            with self._lock:
                self._refreshing = False
            done.set()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        self.refresh_soon().wait(self._scrape_wait)
        with self._lock:
            summary, refreshed_at = self._summary, self._refreshed_at
        age = GaugeMetricFamily(
            "archiver_ledger_summary_age_seconds",
            "Seconds since the ledger gauges below were read; grows while the ledger stalls.",
        )
        if refreshed_at is not None:
            age.add_metric([], time.monotonic() - refreshed_at)
        yield age
        if summary is None:
            return
        windows = GaugeMetricFamily("archiver_windows", "Windows by state.", labels=["state"])
        for state in STATES:
            windows.add_metric([state], summary.by_state.get(state, 0))
        yield windows
        yield from commit_families(summary, datetime.now(UTC), self._start)


_registered: list[LedgerCollector] = []


def register_ledger_collector(ledger: Ledger, start: datetime | None = None) -> LedgerCollector:
    """One collector per process; a second service in the same process (tests) replaces it.

    `start` is ARCHIVER_START; without it, archiving started when the ledger was created.
    """
    for collector in _registered:
        REGISTRY.unregister(collector)
    _registered.clear()
    collector = LedgerCollector(ledger, start or ledger.created_at())
    REGISTRY.register(collector)
    _registered.append(collector)
    collector.refresh_soon()
    return collector
