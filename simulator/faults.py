"""Fault switches: the ways a real platform misbehaves, on demand.

| switch | effect |
| --- | --- |
| `duplicate_callbacks: n` | every callback is sent n extra times |
| `callback_delay: seconds` | wait before preparing and sending a callback |
| `drop_callbacks: true \\| n` | never send callbacks (true) or drop the next n |
| `fail_export_requests: {"status", "count", "retry_after"}` | answer the next `count` export requests with `status` (429, 500, 502, 503 or 504), with `Retry-After` for 429 and 503 (default 1 s; null: none) |
| `failure_notices: n \\| {"count", "error"}` | the next n callbacks are `{"status": "failed", "error": ...}` |
| `callback_shape: name` | how the export reaches the callback (see config.CALLBACK_SHAPES) |
| `expire_links: true` | every download link answers 410 Gone |
| `edited_messages: {id: {field: value}}` | the listed messages read back changed, as if edited after they were exported |
| `deleted_messages: [id, ...]` | the listed messages are gone from the chat's messages, as if deleted |
| `link_ttl: seconds` | download links expire this long after their file was published |
| `echo_requests: true` | error answers and failure notices repeat the request's `authorization` header and `callbackUrl`, as a careless platform's debug text would |
| `redeliver: {"count", "after"}` | the next `count` callbacks are delivered once more, `after` seconds after the first delivery (a platform redelivering late) |
| `revise_per_request: true` | the k-th accepted export of a range (k from 0) has every message edited k times: `content` ends in ` (edit k)` and `updatedAt` is k minutes later |
| `empty_exports: n` | the next n exports hold no messages at all |
"""  # noqa: E501

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from simulator.config import CALLBACK_SHAPES, SimulatorConfig

FAILABLE_STATUSES = (429, 500, 502, 503, 504)
DEFAULT_FAILURE = "The export could not be generated. Please try again later."


class FaultError(ValueError):
    """A fault update that names an unknown switch or gives it a wrong value."""


@dataclass
class ExportFailure:
    status: int
    count: int
    retry_after: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status, "count": self.count, "retry_after": self.retry_after}


@dataclass
class Faults:
    duplicate_callbacks: int = 0
    callback_delay: float = 0.2
    drop_callbacks: bool | int = False
    fail_export_requests: ExportFailure | None = None
    failure_notices: int = 0
    failure_error: str = DEFAULT_FAILURE
    callback_shape: str = "link-ndjson-gz"
    expire_links: bool = False
    edited_messages: dict[str, dict[str, Any]] = field(default_factory=dict)
    deleted_messages: frozenset[str] = frozenset()
    link_ttl: float = 3600.0
    echo_requests: bool = False
    redeliver_count: int = 0
    redeliver_after: float = 0.0
    revise_per_request: bool = False
    empty_exports: int = 0

    @classmethod
    def from_config(cls, config: SimulatorConfig) -> Faults:
        faults = cls(
            callback_delay=config.callback_delay,
            callback_shape=config.callback_shape,
            link_ttl=config.link_ttl,
        )
        faults.merge(
            {
                "duplicate_callbacks": config.duplicate_callbacks,
                "drop_callbacks": config.drop_callbacks,
                "fail_export_requests": config.fail_export_requests,
                "failure_notices": config.failure_notices,
                "expire_links": config.expire_links,
                "echo_requests": config.echo_requests,
            }
        )
        return faults

    def merge(self, update: Any) -> None:
        """Applies a partial update; validates all of it before changing anything."""
        if not isinstance(update, dict):
            raise FaultError("faults must be a JSON object")
        changes: dict[str, Any] = {}
        for key, value in update.items():
            if key == "duplicate_callbacks":
                changes[key] = _count(key, value)
            elif key == "callback_delay":
                changes[key] = _seconds(key, value)
            elif key == "drop_callbacks":
                changes[key] = value if isinstance(value, bool) else _count(key, value)
            elif key == "fail_export_requests":
                changes[key] = _export_failure(value)
            elif key == "failure_notices":
                changes.update(_failure_notices(value))
            elif key == "callback_shape":
                if value not in CALLBACK_SHAPES:
                    raise FaultError(f"callback_shape must be one of {', '.join(CALLBACK_SHAPES)}")
                changes[key] = value
            elif key in ("expire_links", "echo_requests", "revise_per_request"):
                if not isinstance(value, bool):
                    raise FaultError(f"{key} must be true or false")
                changes[key] = value
            elif key == "edited_messages":
                if not isinstance(value, dict) or not all(
                    isinstance(fields, dict) for fields in value.values()
                ):
                    raise FaultError("edited_messages must map message ids to objects of fields")
                changes[key] = {str(id_): dict(fields) for id_, fields in value.items()}
            elif key == "deleted_messages":
                if not isinstance(value, list):
                    raise FaultError("deleted_messages must be a list of message ids")
                changes[key] = frozenset(str(id_) for id_ in value)
            elif key == "redeliver":
                if not isinstance(value, dict) or set(value) - {"count", "after"}:
                    raise FaultError('redeliver must be {"count", "after"}')
                changes["redeliver_count"] = _count("redeliver.count", value.get("count", 1))
                changes["redeliver_after"] = _seconds("redeliver.after", value.get("after", 0))
            elif key == "empty_exports":
                changes[key] = _count(key, value)
            elif key == "link_ttl":
                if _seconds(key, value) <= 0:
                    raise FaultError("link_ttl must be a positive number of seconds")
                changes[key] = float(value)
            else:
                raise FaultError(f"unknown fault switch {key!r}")
        for key, value in changes.items():
            setattr(self, key, value)

    def take_export_failure(self) -> ExportFailure | None:
        """The failure for the next export request, if one is due; counts it down."""
        failure = self.fail_export_requests
        if failure is None or failure.count <= 0:
            return None
        failure.count -= 1
        return ExportFailure(failure.status, 1, failure.retry_after)

    def take_drop(self) -> bool:
        if self.drop_callbacks is True:
            return True
        if self.drop_callbacks is False or self.drop_callbacks <= 0:
            return False
        self.drop_callbacks -= 1
        return True

    def take_redelivery(self) -> float | None:
        """Seconds after which the next callback is delivered again, if one is due."""
        if self.redeliver_count <= 0:
            return None
        self.redeliver_count -= 1
        return self.redeliver_after

    def take_empty(self) -> bool:
        if self.empty_exports <= 0:
            return False
        self.empty_exports -= 1
        return True

    def take_failure_notice(self) -> str | None:
        if self.failure_notices <= 0:
            return None
        self.failure_notices -= 1
        return self.failure_error

    def to_json(self) -> dict[str, Any]:
        failure = self.fail_export_requests
        return {
            "duplicate_callbacks": self.duplicate_callbacks,
            "callback_delay": self.callback_delay,
            "drop_callbacks": self.drop_callbacks,
            "fail_export_requests": failure.to_json() if failure else None,
            "failure_notices": self.failure_notices,
            "failure_error": self.failure_error,
            "callback_shape": self.callback_shape,
            "expire_links": self.expire_links,
            "edited_messages": self.edited_messages,
            "deleted_messages": sorted(self.deleted_messages),
            "link_ttl": self.link_ttl,
            "echo_requests": self.echo_requests,
            "redeliver": {"count": self.redeliver_count, "after": self.redeliver_after},
            "revise_per_request": self.revise_per_request,
            "empty_exports": self.empty_exports,
        }


def _count(key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise FaultError(f"{key} must be a whole number, 0 or more")
    return value


def _seconds(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise FaultError(f"{key} must be a number of seconds, 0 or more")
    return float(value)


def _export_failure(value: Any) -> ExportFailure | None:
    if value is None:
        return None
    if not isinstance(value, dict) or set(value) - {"status", "count", "retry_after"}:
        raise FaultError('fail_export_requests must be {"status", "count", "retry_after"} or null')
    status = value.get("status")
    if status not in FAILABLE_STATUSES:
        raise FaultError(f"fail_export_requests.status must be one of {FAILABLE_STATUSES}")
    # Absent: the usual one second; an explicit null: no Retry-After header at all.
    retry_after = value.get("retry_after", 1 if status in (429, 503) else None)
    return ExportFailure(
        status=status,
        count=_count("fail_export_requests.count", value.get("count", 1)),
        retry_after=None if retry_after is None else _seconds("retry_after", retry_after),
    )


def _failure_notices(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        if set(value) - {"count", "error"}:
            raise FaultError('failure_notices must be a count or {"count", "error"}')
        error = value.get("error", DEFAULT_FAILURE)
        if not isinstance(error, str):
            raise FaultError("failure_notices.error must be a string")
        return {
            "failure_notices": _count("failure_notices.count", value.get("count", 1)),
            "failure_error": error,
        }
    return {"failure_notices": _count("failure_notices", value)}
