"""Gauges read from the ledger at scrape time, so every replica reports the shared truth."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime

from prometheus_client import REGISTRY
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from archiver.commit_metrics import commit_families
from storage.ledger import Ledger
from storage.lifecycle import STATES
from storage.schema import STREAM

log = logging.getLogger("chat_archiver.metrics")


class LedgerCollector(Collector):
    def __init__(self, ledger: Ledger, start: datetime, stream: str = STREAM) -> None:
        self._ledger = ledger
        self._stream = stream
        self._start = start

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
        yield from commit_families(summary, datetime.now(UTC), self._start)


_registered: list[LedgerCollector] = []


def register_ledger_collector(ledger: Ledger, start: datetime | None = None) -> None:
    """One collector per process; a second service in the same process (tests) replaces it.

    `start` is ARCHIVER_START; without it, archiving started when the ledger was created.
    """
    for collector in _registered:
        REGISTRY.unregister(collector)
    _registered.clear()
    collector = LedgerCollector(ledger, start or ledger.created_at())
    REGISTRY.register(collector)
    _registered.append(collector)
