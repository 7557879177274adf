from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from storage.commit import write_window
from storage.layout import Window, manifest_key
from storage.manifest import Manifest, ManifestError, PartInfo, list_manifests, read_manifest
from storage.objectstore import ObjectStore
from tests.storage.messages import DAY, INGESTED, WINDOW, batch, message

PART = PartInfo("chat_messages/date=2024-03-01/part-x-0000.parquet", 10, "ab" * 32, 3)


def test_manifest_round_trips_through_json() -> None:
    manifest = Manifest(
        window=WINDOW,
        export_id="e",
        committed_at=datetime(2024, 3, 2, 4, 0, 0, 123456, tzinfo=UTC),
        rows=3,
        rejects=1,
        parts=(PART,),
        ingested_at=INGESTED,
        rejects_key="_rejects/chat_messages/x.jsonl",
        rows_outside_window=2,
        duplicates=1,
    )
    document = json.loads(manifest.to_json())
    assert document["window_start"] == "2024-03-01T00:00:00Z"
    assert document["committed_at"] == "2024-03-02T04:00:00.123456Z"
    assert document["dates"] == ["2024-03-01"]
    assert document["parts"] == [{"key": PART.key, "bytes": 10, "sha256": "ab" * 32, "rows": 3}]
    assert Manifest.from_json(manifest.to_json()) == manifest


def test_fields_from_newer_writers_are_carried_along() -> None:
    document = json.loads(Manifest(WINDOW, "e", INGESTED, 0, 0).to_json())
    document["future_field"] = {"x": 1}
    manifest = Manifest.from_json(json.dumps(document).encode())
    assert json.loads(manifest.to_json())["future_field"] == {"x": 1}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"not json", "not a valid manifest"),
        (b'{"window_start": "2024-03-01T00:00:00Z"}', "missing field 'window_end'"),
        (
            b'{"window_start": "2024-03-01T00:00:00", "window_end": "2024-03-02T00:00:00Z"}',
            "has no time zone",
        ),
    ],
)
def test_malformed_manifests_raise_manifest_error(data: bytes, message: str) -> None:
    with pytest.raises(ManifestError, match=message):
        Manifest.from_json(data)


def test_read_manifest_is_none_before_commit(local_store: ObjectStore) -> None:
    assert read_manifest(local_store, WINDOW) is None


def test_read_manifest_names_the_key_of_a_broken_manifest(local_store: ObjectStore) -> None:
    local_store.put_bytes(manifest_key(WINDOW), b"{}")
    with pytest.raises(ManifestError, match=manifest_key(WINDOW)):
        read_manifest(local_store, WINDOW)


def test_list_manifests_in_window_order_and_since(local_store: ObjectStore) -> None:
    windows = [Window(DAY + timedelta(days=n), DAY + timedelta(days=n + 1)) for n in (2, 0, 1)]
    for window in windows:
        write_window(
            local_store, window, "e", [batch([message(1, window.start)])], ingested_at=INGESTED
        )
    local_store.put_bytes("_manifests/chat_messages/README.txt", b"not a manifest")
    assert [m.window for m in list_manifests(local_store)] == sorted(windows)
    since = DAY + timedelta(days=1, hours=12)
    assert [m.window.start for m in list_manifests(local_store, since=since)] == [
        DAY + timedelta(days=1),
        DAY + timedelta(days=2),
    ]
