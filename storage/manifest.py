"""Manifests: the commit marker of a window (DESIGN §3.4).

A window is committed when its manifest exists; the manifest lists every part of the window
with its size, SHA-256 and row count, so the archive can be verified without trusting
listings.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from storage.errors import PermanentError
from storage.layout import Window, manifest_key, manifest_prefix, window_from_name
from storage.objectstore import ObjectNotFound, ObjectStore
from storage.schema import SCHEMA_VERSION, STREAM


class ManifestError(PermanentError, ValueError):
    """A manifest object exists but cannot be read as one."""


@dataclass(frozen=True)
class PartInfo:
    key: str
    bytes: int
    sha256: str
    rows: int

    @property
    def date(self) -> date | None:
        """The partition date, from the `date=YYYY-MM-DD` segment of the key."""
        for segment in self.key.split("/"):
            if segment.startswith("date="):
                try:
                    return date.fromisoformat(segment.removeprefix("date="))
                except ValueError:
                    return None
        return None


@dataclass(frozen=True)
class Manifest:
    window: Window
    export_id: str
    committed_at: datetime
    rows: int
    rejects: int
    parts: tuple[PartInfo, ...] = ()
    stream: str = STREAM
    schema_version: int = SCHEMA_VERSION
    ingested_at: datetime | None = None
    rejects_key: str | None = None
    rows_outside_window: int = 0
    """Rows whose created_at falls outside the window; kept, but worth knowing about."""
    duplicates: int = 0
    """Rows dropped because a later or newer row had the same id."""
    extra: dict[str, Any] = field(default_factory=dict, compare=False)
    """Fields written by a newer version, carried along unread."""

    @property
    def dates(self) -> list[date]:
        return sorted({day for part in self.parts if (day := part.date) is not None})

    def to_json(self) -> bytes:
        document = {
            **self.extra,
            "schema_version": self.schema_version,
            "stream": self.stream,
            "window_start": iso(self.window.start),
            "window_end": iso(self.window.end),
            "export_id": self.export_id,
            "committed_at": iso(self.committed_at),
            "ingested_at": iso(self.ingested_at) if self.ingested_at else None,
            "rows": self.rows,
            "rejects": self.rejects,
            "rejects_key": self.rejects_key,
            "rows_outside_window": self.rows_outside_window,
            "duplicates": self.duplicates,
            "dates": [day.isoformat() for day in self.dates],
            "parts": [
                {"key": p.key, "bytes": p.bytes, "sha256": p.sha256, "rows": p.rows}
                for p in self.parts
            ],
        }
        return json.dumps(document, indent=2).encode() + b"\n"

    @classmethod
    def from_json(cls, data: bytes) -> Manifest:
        try:
            document = json.loads(data)
            window = Window(_moment(document["window_start"]), _moment(document["window_end"]))
            ingested = document.get("ingested_at")
            known = {
                "schema_version",
                "stream",
                "window_start",
                "window_end",
                "export_id",
                "committed_at",
                "ingested_at",
                "rows",
                "rejects",
                "rejects_key",
                "rows_outside_window",
                "duplicates",
                "dates",
                "parts",
            }
            return cls(
                window=window,
                export_id=str(document["export_id"]),
                committed_at=_moment(document["committed_at"]),
                rows=int(document["rows"]),
                rejects=int(document["rejects"]),
                parts=tuple(
                    PartInfo(str(p["key"]), int(p["bytes"]), str(p["sha256"]), int(p["rows"]))
                    for p in document["parts"]
                ),
                stream=str(document["stream"]),
                schema_version=int(document["schema_version"]),
                ingested_at=_moment(ingested) if ingested else None,
                rejects_key=document.get("rejects_key"),
                rows_outside_window=int(document.get("rows_outside_window", 0)),
                duplicates=int(document.get("duplicates", 0)),
                extra={k: v for k, v in document.items() if k not in known},
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            detail = f"missing field {exc}" if isinstance(exc, KeyError) else str(exc)
            raise ManifestError(f"not a valid manifest: {detail}") from exc


def read_manifest(store: ObjectStore, window: Window, stream: str = STREAM) -> Manifest | None:
    """The window's manifest, or None when the window has not been committed."""
    key = manifest_key(window, stream)
    try:
        data = store.get_bytes(key)
    except ObjectNotFound:
        return None
    return load(key, data)


def list_manifests(
    store: ObjectStore, stream: str = STREAM, since: datetime | None = None
) -> Iterator[Manifest]:
    """Manifests in window order; with `since`, only windows that end after it."""
    for key, _window in manifest_keys(store, stream, since):
        yield load(key, store.get_bytes(key))


def manifest_keys(
    store: ObjectStore, stream: str = STREAM, since: datetime | None = None
) -> Iterator[tuple[str, Window]]:
    """Manifest keys and the windows their names give; names that are not windows are skipped."""
    prefix = manifest_prefix(stream)
    for info in store.list(prefix):
        name = info.key.removeprefix(prefix)
        if "/" in name or not name.endswith(".json"):
            continue
        try:
            window = window_from_name(name.removesuffix(".json"))
        except ValueError:
            continue  # not one of ours: verify reports objects that do not belong
        if since is None or window.end > since:
            yield info.key, window


def load(key: str, data: bytes) -> Manifest:
    try:
        return Manifest.from_json(data)
    except ManifestError as exc:
        raise ManifestError(f"{key}: {exc}") from exc


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _moment(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"timestamp {text!r} has no time zone")
    return moment.astimezone(UTC)
