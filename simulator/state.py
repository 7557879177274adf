"""What the simulator has seen and done: counts and logs for tests, plus the data it holds.

One lock guards it all; it is never held across an await, so it is safe from the event loop
and from the threads that prepare files or read state in-process.
"""

from __future__ import annotations

import threading
from bisect import insort
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from simulator.config import SimulatorConfig
from simulator.faults import ExportFailure, Faults


def iso(moment: datetime) -> str:
    """The canonical form used in state keys: UTC, milliseconds, `Z`."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def range_key(start: datetime, end: datetime) -> str:
    """Key of `export_requests_by_range` in GET /_sim/state."""
    return f"{iso(start)}/{iso(end)}"


@dataclass(frozen=True)
class CallbackPlan:
    """What to do with one export's callback, decided once the delay has passed."""

    drop: bool
    failure: str | None
    duplicates: int
    shape: str
    echo: bool = False
    redeliver_after: float | None = None
    empty: bool = False


class SimulatorState:
    def __init__(self, config: SimulatorConfig) -> None:
        self._config = config
        self._lock = threading.Lock()
        self.faults = Faults.from_config(config)
        self._export_requests: list[dict[str, Any]] = []
        self._by_range: Counter[str] = Counter()
        self._accepted_by_range: Counter[str] = Counter()
        self._callbacks: list[dict[str, Any]] = []
        self._posted: list[dict[str, Any]] = []
        self._posted_chats: set[str] = set()
        self._exported: list[tuple[datetime, datetime]] = []

    def record_export_request(self, entry: dict[str, Any], key: str) -> None:
        with self._lock:
            self._export_requests.append(entry)
            self._by_range[key] += 1

    def take_revision(self, key: str) -> int:
        """How many exports of this range were accepted before this one (when the faults
        revise messages per request; 0 otherwise)."""
        with self._lock:
            revision = self._accepted_by_range[key]
            self._accepted_by_range[key] += 1
            return revision if self.faults.revise_per_request else 0

    def record_callback(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self._callbacks.append(entry)

    def take_export_failure(self) -> ExportFailure | None:
        with self._lock:
            return self.faults.take_export_failure()

    def callback_delay(self) -> float:
        with self._lock:
            return self.faults.callback_delay

    def take_callback_plan(self) -> CallbackPlan:
        with self._lock:
            drop = self.faults.take_drop()
            return CallbackPlan(
                drop=drop,
                failure=None if drop else self.faults.take_failure_notice(),
                duplicates=self.faults.duplicate_callbacks,
                shape=self.faults.callback_shape,
                echo=self.faults.echo_requests,
                redeliver_after=None if drop else self.faults.take_redelivery(),
                empty=self.faults.take_empty(),
            )

    def upstream_changes(self) -> tuple[dict[str, dict[str, Any]], frozenset[str]]:
        """Messages edited and deleted since they were exported (fault switches)."""
        with self._lock:
            return dict(self.faults.edited_messages), self.faults.deleted_messages

    def links_expired(self) -> bool:
        with self._lock:
            return self.faults.expire_links

    def link_ttl(self) -> float:
        with self._lock:
            return self.faults.link_ttl

    def echoes_requests(self) -> bool:
        with self._lock:
            return self.faults.echo_requests

    def update_faults(self, update: Any) -> dict[str, Any]:
        with self._lock:
            self.faults.merge(update)
            return self.faults.to_json()

    def reset(self) -> None:
        """Clears counts and logs and restores the configured faults; keeps the data."""
        with self._lock:
            self.faults = Faults.from_config(self._config)
            self._export_requests.clear()
            self._by_range.clear()
            self._accepted_by_range.clear()
            self._callbacks.clear()

    def add_exported(self, start: datetime, end: datetime) -> None:
        """Remembers a range as exported, merging it into the known ranges."""
        with self._lock:
            ranges = sorted([*self._exported, (start, end)])
            merged: list[tuple[datetime, datetime]] = []
            for low, high in ranges:
                if merged and low <= merged[-1][1]:
                    merged[-1] = (merged[-1][0], max(merged[-1][1], high))
                else:
                    merged.append((low, high))
            self._exported = merged

    def exported_ranges(self) -> list[tuple[datetime, datetime]]:
        with self._lock:
            return list(self._exported)

    def add_posted(self, message: dict[str, Any]) -> None:
        with self._lock:
            insort(self._posted, message, key=lambda item: item["createdAt"])
            self._posted_chats.add(message["chatId"])

    def posted(self, chat_id: str | None = None) -> list[dict[str, Any]]:
        """Messages created through POST /chat-messages, sorted by createdAt."""
        with self._lock:
            return [m for m in self._posted if chat_id is None or m["chatId"] == chat_id]

    def has_posted_chat(self, chat_id: str) -> bool:
        with self._lock:
            return chat_id in self._posted_chats

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            callbacks = [dict(entry) for entry in self._callbacks]
            return {
                "export_requests_total": len(self._export_requests),
                "export_requests_accepted": sum(
                    1 for entry in self._export_requests if entry["status"] == 200
                ),
                "export_requests_by_range": dict(self._by_range),
                "export_requests": [dict(entry) for entry in self._export_requests],
                "callbacks_sent": sum(entry["attempts_answered"] for entry in callbacks),
                "callbacks_delivered": sum(1 for entry in callbacks if entry["delivered"]),
                "callbacks_dropped": sum(1 for entry in callbacks if entry["kind"] == "dropped"),
                "callbacks": callbacks,
                "posted_messages": len(self._posted),
                "faults": self.faults.to_json(),
            }
