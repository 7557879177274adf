"""Prometheus metrics of intake and processing; served by /metrics.

Every labelled series exists from the first scrape (at zero), so an alert on `increase(...)`
sees the first failure instead of a series appearing out of nowhere.
"""

from prometheus_client import Counter, Histogram

CALLBACK_OUTCOMES = (
    "accepted",
    "duplicate",
    "superseded",
    "not_found",
    "too_large",
    "timeout",
    "store_error",
)
PROCESSING_OUTCOMES = ("committed", "quarantined", "retry", "fenced", "error")

CALLBACKS = Counter(
    "archiver_callbacks_total",
    "Callback requests, by outcome (accepted, duplicate, not_found, too_large, timeout, "
    "store_error).",
    ["outcome"],
)
CALLBACK_BYTES = Counter("archiver_callback_bytes_total", "Bytes of callback bodies stored raw.")
WINDOWS_PROCESSED = Counter(
    "archiver_windows_processed_total",
    "Processing results, by outcome (committed, quarantined, retry, and error: an unexpected "
    "failure, tried again after a growing delay).",
    ["outcome"],
)
ROWS_WRITTEN = Counter("archiver_rows_written_total", "Rows committed to Parquet.")
ROWS_REJECTED = Counter("archiver_rows_rejected_total", "Rows sent to _rejects.")
DOWNLOAD_BYTES = Counter("archiver_download_bytes_total", "Bytes downloaded from export links.")
PROCESSING_SECONDS = Histogram(
    "archiver_processing_seconds",
    "Time from claiming a received window to its outcome.",
    buckets=(0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600),
)

for _outcome in CALLBACK_OUTCOMES:
    CALLBACKS.labels(_outcome)
for _outcome in PROCESSING_OUTCOMES:
    WINDOWS_PROCESSED.labels(_outcome)
