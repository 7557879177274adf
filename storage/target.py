"""Where a window's rows are committed: the plain Parquet layout or an Iceberg table.

The worker hands a window's batches to a commit target and records what it returns; the
target alone knows how a window becomes visible to readers (a manifest, or a snapshot).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Protocol

import pyarrow as pa

from storage.commit import CommitResult, WriteOptions, write_window
from storage.layout import Window, manifest_key
from storage.manifest import ManifestError, read_manifest
from storage.objectstore import ObjectStore

DEFAULT_OPTIONS = WriteOptions()

Fence = Callable[[int], None]
"""Called with the window's row count before each object write and right before the step that
makes the window visible; raises when the write must not go on (a lost lease, an export no
longer eligible, a shrink the guard refuses)."""


class CommitTarget(Protocol):
    def describe(self) -> str: ...

    def commit_window(
        self,
        window: Window,
        export_id: str,
        batches: Iterable[pa.RecordBatch],
        *,
        ingested_at: datetime,
        options: WriteOptions = DEFAULT_OPTIONS,
        fence: Fence | None = None,
    ) -> CommitResult: ...

    def retire(self, window: Window) -> list[str]:
        """Takes a replaced window's earlier commit out of the table, once windows of another
        length cover all its time; returns the objects deleted."""
        ...


class PlainTarget:
    """The Hive-style layout: parts, then the manifest that commits them."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store

    def describe(self) -> str:
        return f"parquet layout at {self.store.description}"

    def commit_window(
        self,
        window: Window,
        export_id: str,
        batches: Iterable[pa.RecordBatch],
        *,
        ingested_at: datetime,
        options: WriteOptions = DEFAULT_OPTIONS,
        fence: Fence | None = None,
    ) -> CommitResult:
        return write_window(
            self.store,
            window,
            export_id,
            batches,
            ingested_at=ingested_at,
            options=options,
            fence=fence,
        )

    def retire(self, window: Window) -> list[str]:
        """The manifest first (readers that trust manifests stop seeing the window at once),
        then its parts and rejects."""
        try:
            manifest = read_manifest(self.store, window)
        except ManifestError:
            manifest = None
        if manifest is None:
            return []
        keys = [manifest_key(window, manifest.stream)]
        keys += [part.key for part in manifest.parts]
        if manifest.rejects_key:
            keys.append(manifest.rejects_key)
        for key in keys:
            self.store.delete(key)
        return keys
