"""Prometheus counters of the scheduler; served by the receiver's /metrics."""

from prometheus_client import Counter

EXPORT_REQUESTS = Counter(
    "archiver_export_requests_total",
    "Export requests sent to the upstream, by outcome.",
    ["outcome"],
)
WINDOWS_PLANNED = Counter("archiver_windows_planned_total", "Windows added to the ledger.")
