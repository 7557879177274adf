"""Prometheus counters of the scheduler; served by the receiver's /metrics."""

from prometheus_client import Counter, Gauge

EXPORT_OUTCOMES = ("accepted", "auth_rejected", "period_too_long", "refused", "unavailable")

EXPORT_REQUESTS = Counter(
    "archiver_export_requests_total",
    "Export requests sent to the upstream, by outcome.",
    ["outcome"],
)
WINDOWS_PLANNED = Counter("archiver_windows_planned_total", "Windows added to the ledger.")
API_KEY_REJECTED = Gauge(
    "archiver_api_key_rejected",
    "1 while the upstream rejects the API key (no export requests are sent), else 0.",
)
REQUEST_TICK_SUCCESS = Gauge(
    "archiver_request_tick_success_timestamp_seconds",
    "When a request tick last ran to its end without an error or a stop (0: not yet).",
)

# Every labelled series from the first scrape, at zero.
for _outcome in EXPORT_OUTCOMES:
    EXPORT_REQUESTS.labels(_outcome)
