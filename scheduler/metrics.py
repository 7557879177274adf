"""Prometheus counters of the scheduler; served by the receiver's /metrics."""

from prometheus_client import Counter, Gauge

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
