from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from storage.commit import CommitResult, WriteOptions, write_window
from storage.layout import Window, manifest_key, part_key
from storage.manifest import PartInfo, read_manifest
from storage.objectstore import ObjectStore
from storage.verify import Problem, verify_archive
from tests.storage.messages import DAY, INGESTED, WINDOW, batches_of, day_of_messages

TINY = WriteOptions(part_bytes=4_000, row_group_bytes=2_000)


def archive(store: ObjectStore, window: Window = WINDOW) -> CommitResult:
    records = day_of_messages(100, start=window.start)
    result = write_window(
        store, window, "e", batches_of(records, 20), ingested_at=INGESTED, options=TINY
    )
    assert len(result.parts) >= 2
    return result


def kinds(store: ObjectStore, **kwargs: object) -> list[tuple[str, str]]:
    return [(p.kind, p.key) for p in verify_archive(store, **kwargs)]  # type: ignore[arg-type]


def test_a_fresh_archive_verifies_clean(store: ObjectStore) -> None:
    archive(store)
    write_window(store, Window(DAY - timedelta(days=1), DAY), "e", [], ingested_at=INGESTED)
    assert list(verify_archive(store)) == []


def test_a_deleted_part_is_missing(store: ObjectStore) -> None:
    part = archive(store).parts[1]
    store.delete(part.key)
    assert kinds(store) == [("missing", part.key)]


def test_a_truncated_part_has_the_wrong_size(store: ObjectStore) -> None:
    part = archive(store).parts[0]
    store.put_bytes(part.key, store.get_bytes(part.key)[:-100])
    problems = list(verify_archive(store))
    assert problems == [
        Problem(part.key, "size", f"{part.bytes - 100} bytes, manifest says {part.bytes}")
    ]


def test_a_changed_part_of_the_same_size_fails_its_checksum(store: ObjectStore) -> None:
    part = archive(store).parts[0]
    data = bytearray(store.get_bytes(part.key))
    data[len(data) // 2] ^= 0xFF
    store.put_bytes(part.key, bytes(data))
    assert kinds(store) == [("checksum", part.key)]


def test_a_part_no_manifest_lists_is_unlisted(store: ObjectStore) -> None:
    archive(store)
    stray = part_key(DAY.date(), WINDOW, 99)
    store.put_bytes(stray, b"left over")
    other = "chat_messages/date=2024-03-01/notes.txt"
    store.put_bytes(other, b"x")
    assert kinds(store) == [("unlisted", other), ("unlisted", stray)]


def rewrite_manifest(store: ObjectStore, first_part: PartInfo, rows: int) -> str:
    """Replaces the manifest's first part entry and its total rows."""
    manifest = read_manifest(store, WINDOW)
    assert manifest is not None
    parts = (first_part, *manifest.parts[1:])
    store.put_bytes(manifest_key(WINDOW), replace(manifest, parts=parts, rows=rows).to_json())
    return manifest_key(WINDOW)


def test_row_counts_are_checked_against_the_parquet_footer(local_store: ObjectStore) -> None:
    result = archive(local_store)
    first = result.parts[0]
    key = rewrite_manifest(local_store, replace(first, rows=first.rows + 1), result.rows + 1)
    assert kinds(local_store) == [("rows", first.key)]
    rewrite_manifest(local_store, replace(first, rows=first.rows + 1), result.rows)
    assert kinds(local_store) == [("rows", key), ("rows", first.key)]


def test_a_part_with_another_schema_is_reported(local_store: ObjectStore, tmp_path: Path) -> None:
    result = archive(local_store)
    other = tmp_path / "other.parquet"
    pq.write_table(pa.table({"id": ["a"], "created_at": pa.array([1], pa.int64())}), other)
    first = result.parts[0]
    local_store.put_file(first.key, other)
    digest = hashlib.sha256(other.read_bytes()).hexdigest()
    swapped = PartInfo(first.key, other.stat().st_size, digest, 1)
    rewrite_manifest(local_store, swapped, result.rows - first.rows + 1)
    problems = list(verify_archive(local_store))
    assert [(p.kind, p.key) for p in problems] == [("schema", first.key)]
    assert "missing column chat_id" in problems[0].detail
    assert "created_at is int64, expected timestamp[us, tz=UTC]" in problems[0].detail


def test_unreadable_manifests_are_reported(local_store: ObjectStore) -> None:
    local_store.put_bytes(manifest_key(WINDOW), b"{broken")
    local_store.put_bytes("_manifests/chat_messages/latest.json", b"{}")
    assert kinds(local_store) == [
        ("manifest", "_manifests/chat_messages/latest.json"),
        ("manifest", manifest_key(WINDOW)),
    ]


def test_since_skips_older_windows_and_their_parts(local_store: ObjectStore) -> None:
    older = Window(DAY - timedelta(days=1), DAY)
    old_result = archive(local_store, older)
    archive(local_store)
    local_store.delete(old_result.parts[0].key)
    assert kinds(local_store, since=DAY) == []
    assert kinds(local_store) == [("missing", old_result.parts[0].key)]
