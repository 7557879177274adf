"""The settings that alert thresholds depend on, as gauges, so the shipped alert rules hold
whatever window length, settle delay or callback timeout an install chose."""

from __future__ import annotations

from prometheus_client import Gauge

from archiver.settings import Settings

WINDOW_SECONDS = Gauge("archiver_window_seconds", "ARCHIVER_WINDOW: the length of one window.")
SETTLE_DELAY_SECONDS = Gauge(
    "archiver_settle_delay_seconds", "ARCHIVER_SETTLE_DELAY: how long after its end a window waits."
)
CALLBACK_TIMEOUT_SECONDS = Gauge(
    "archiver_callback_timeout_seconds",
    "ARCHIVER_CALLBACK_TIMEOUT: how long a request waits for its callback before another.",
)


def export_settings(settings: Settings) -> None:
    WINDOW_SECONDS.set(settings.window.total_seconds())
    SETTLE_DELAY_SECONDS.set(settings.settle_delay.total_seconds())
    CALLBACK_TIMEOUT_SECONDS.set(settings.callback_timeout.total_seconds())
