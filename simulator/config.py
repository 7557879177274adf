"""The simulator's settings, including the faults it starts with."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

LANGUAGES = ("enUs", "esEs", "ptBr")

# How an export reaches the callback: a link to a file in one of four formats, or the data
# in the callback body itself.
CALLBACK_SHAPES = (
    "link-ndjson-gz",
    "link-json",
    "link-csv",
    "link-zip-ndjson",
    "inline-json",
    "inline-ndjson",
)

CSV_HEADERS = ("labels", "fields")


@dataclass
class SimulatorConfig:
    """Everything the fake platform needs; the defaults suit the demo."""

    api_key: str = "sim-key"
    seed: int = 7
    messages_per_day: int = 500
    chats: int = 40
    allow_insecure_callbacks: bool = False
    # Base URL of the simulator's own file links; None derives it from the export request.
    public_url: str | None = None
    link_ttl: float = 3600.0
    # CSV header row: the requested language's labels, or the API's field names.
    csv_header: str = "labels"
    # Delivery of callbacks to a receiver that answers 5xx, 429 or not at all.
    callback_retries: int = 4
    callback_retry_delay: float = 0.5
    callback_timeout: float = 30.0
    # Directory for prepared export files; None uses a fresh temporary directory.
    file_dir: str | None = None
    # Faults the simulator starts with (POST /_sim/faults changes them while it runs).
    callback_delay: float = 0.2
    callback_shape: str = "link-ndjson-gz"
    duplicate_callbacks: int = 0
    drop_callbacks: bool | int = False
    fail_export_requests: dict[str, Any] | None = None
    failure_notices: int = 0
    expire_links: bool = False
    echo_requests: bool = False

    def __post_init__(self) -> None:
        if self.callback_shape not in CALLBACK_SHAPES:
            raise ValueError(
                f"callback_shape {self.callback_shape!r} is not one of {', '.join(CALLBACK_SHAPES)}"
            )
        if self.csv_header not in CSV_HEADERS:
            raise ValueError(f"csv_header {self.csv_header!r} is not one of {CSV_HEADERS}")
        if self.messages_per_day < 0:
            raise ValueError("messages_per_day must be 0 or more")
        if self.link_ttl <= 0:
            raise ValueError("link_ttl must be positive")
        if self.callback_retries < 0 or self.callback_retry_delay < 0:
            raise ValueError("callback_retries and callback_retry_delay must be 0 or more")
