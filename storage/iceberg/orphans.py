"""Files under the table's location that no snapshot references: what a crashed commit left.

A file is referenced when it is live in any snapshot still in the table's metadata (so time
travel to an older snapshot keeps working until it expires). Only files no snapshot references
are ever deleted.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, date, timedelta

from pyiceberg.table import Table

from storage.iceberg.fileio import StoreFileIO
from storage.iceberg.schema import DATA_DIR
from storage.layout import Window

log = logging.getLogger("chat_archiver.iceberg")


def referenced_locations(table: Table) -> set[str]:
    """Every data file, manifest and manifest list any live snapshot refers to."""
    found: set[str] = set()
    seen_manifests: set[str] = set()
    for snapshot in table.metadata.snapshots:
        found.add(snapshot.manifest_list)
        for manifest in snapshot.manifests(table.io):
            found.add(manifest.manifest_path)
            if manifest.manifest_path in seen_manifests:
                continue
            seen_manifests.add(manifest.manifest_path)
            for entry in manifest.fetch_manifest_entry(table.io, discard_deleted=True):
                found.add(entry.data_file.file_path)
    return found


def window_days(window: Window) -> Iterator[date]:
    day = window.start.astimezone(UTC).date()
    last = (window.end.astimezone(UTC) - timedelta(microseconds=1)).date()
    while day <= last:
        yield day
        day += timedelta(days=1)


def delete_window_orphans(table: Table, window: Window, *, keep_write_id: str) -> list[str]:
    """Deletes this window's data files that no snapshot references, except the current
    write's. Runs after the window's commit, under its lease, so no other writer is mid-way
    through writing files with this window's name."""
    from storage.iceberg.commit import window_file_prefix

    file_io = table.io
    assert isinstance(file_io, StoreFileIO)
    candidates = [
        info.key
        for day in window_days(window)
        for info in file_io.store.list(window_file_prefix(day, window))
        if f"-{keep_write_id}-" not in info.key
    ]
    if not candidates:
        return []
    referenced = referenced_locations(table)
    deleted = []
    for key in candidates:
        if f"{file_io.root}/{key}" not in referenced:
            file_io.store.delete(key)
            deleted.append(key)
    if deleted:
        log.info("iceberg_orphans_deleted", extra={"window": str(window), "files": len(deleted)})
    return deleted


def delete_orphans(table: Table, *, busy: set[Window]) -> list[str]:
    """Deletes every unreferenced data file under the table's location, except those of
    `busy` windows (being processed now: their files may be uploaded and not yet committed).
    After snapshot expiry this is what frees the files only expired snapshots referenced."""
    file_io = table.io
    assert isinstance(file_io, StoreFileIO)
    referenced = referenced_locations(table)
    busy_names = {window.name for window in busy}
    deleted = []
    for info in file_io.store.list(f"{DATA_DIR}/"):
        if f"{file_io.root}/{info.key}" in referenced:
            continue
        name = info.key.rsplit("/", 1)[-1]
        if "-".join(name.split("-")[:2]) in busy_names:
            continue
        file_io.store.delete(info.key)
        deleted.append(info.key)
    if deleted:
        log.info("iceberg_orphans_deleted", extra={"files": len(deleted)})
    return deleted
