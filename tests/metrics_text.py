"""Reading one sample out of a service's /metrics, as a dashboard would."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families


def sample(base_url: str, name: str, labels: dict[str, str] | None = None) -> float | None:
    """The value of sample `name` with exactly `labels`, or None when it is not exported."""
    text = httpx.get(f"{base_url}/metrics", timeout=5).text
    for family in text_string_to_metric_families(text):
        for found in family.samples:
            if found.name == name and found.labels == (labels or {}):
                return float(found.value)
    return None
