"""Gauges read from the ledger at scrape time, so every replica reports the shared truth."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime

from prometheus_client import REGISTRY
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from storage.ledger import Ledger
from storage.lifecycle import STATES
from storage.schema import STREAM

log = logging.getLogger("chat_archiver.metrics")


class LedgerCollector(Collector):
    def __init__(self, ledger: Ledger, stream: str = STREAM) -> None:
        self._ledger = ledger
        self._stream = stream

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            summary = self._ledger.summary(self._stream)
        except Exception as error:  # noqa: BLE001 - a scrape must not fail with the ledger
            log.warning("metrics_ledger_unreachable", extra={"reason": str(error)})
            return
        windows = GaugeMetricFamily("archiver_windows", "Windows by state.", labels=["state"])
        for state in STATES:
            windows.add_metric([state], summary.by_state.get(state, 0))
        yield windows
        lag = GaugeMetricFamily(
            "archiver_lag_seconds", "Seconds between now and the end of the last committed window."
        )
        if summary.last_committed is not None:
            end = summary.last_committed.window.end
            lag.add_metric([], (datetime.now(UTC) - end).total_seconds())
        yield lag


_registered: list[LedgerCollector] = []


def register_ledger_collector(ledger: Ledger) -> None:
    """One collector per process; a second service in the same process (tests) replaces it."""
    for collector in _registered:
        REGISTRY.unregister(collector)
    _registered.clear()
    collector = LedgerCollector(ledger)
    REGISTRY.register(collector)
    _registered.append(collector)
