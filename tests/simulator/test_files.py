from __future__ import annotations

import csv
import gzip
import json
import time
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from simulator.config import CALLBACK_SHAPES
from simulator.corpus import MessageCorpus
from simulator.files import CSV_LABELS, FIELDS, FileStore, LinkGone, write_export

DAY = datetime(2024, 3, 1, tzinfo=UTC)
MESSAGES = list(MessageCorpus(seed=8, messages_per_day=4500).between(DAY, DAY + timedelta(days=1)))


def read_back(path: Path, shape: str) -> list[dict]:
    data = path.read_bytes()
    if shape == "link-ndjson-gz":
        data = gzip.decompress(data)
    elif shape == "link-zip-ndjson":
        data = zipfile.ZipFile(path).read("chat-messages.ndjson")
    if shape in ("link-json",):
        return list(json.loads(data))
    if shape == "inline-json":
        body = json.loads(data)
        assert body["status"] == "completed"
        return list(body["data"])
    if shape == "link-csv":
        with path.open(encoding="utf-8", newline="") as text:
            rows = list(csv.reader(text))
        assert tuple(rows[0]) == CSV_LABELS["enUs"]
        return [{f: v or None for f, v in zip(FIELDS, row, strict=True)} for row in rows[1:]]
    return [json.loads(line) for line in data.decode().splitlines()]


@pytest.mark.parametrize("shape", CALLBACK_SHAPES)
def test_every_shape_round_trips_more_messages_than_one_write_batch(
    tmp_path: Path, shape: str
) -> None:
    path = tmp_path / "export"
    assert write_export(path, iter(MESSAGES), shape) == len(MESSAGES) == 4500
    assert read_back(path, shape) == MESSAGES


@pytest.mark.parametrize("shape", CALLBACK_SHAPES)
def test_every_shape_writes_a_valid_empty_file(tmp_path: Path, shape: str) -> None:
    path = tmp_path / "export"
    assert write_export(path, iter([]), shape) == 0
    assert read_back(path, shape) == []


def test_a_published_file_is_served_until_its_link_expires(tmp_path: Path) -> None:
    store = FileStore(ttl=0.2, directory=str(tmp_path))
    name, path = store.new_path("link-ndjson-gz")
    assert name.endswith(".ndjson.gz") and path.parent == tmp_path
    write_export(path, iter(MESSAGES[:3]), "link-ndjson-gz")
    store.publish(name, "link-ndjson-gz")
    stored = store.get(name)
    assert stored is not None and stored.content_type == "application/gzip"
    with pytest.raises(LinkGone):
        store.get(name, force_expired=True)
    assert store.get("unknown.ndjson.gz") is None
    time.sleep(0.3)
    with pytest.raises(LinkGone):
        store.get(name)
    store.purge_expired()
    assert not path.exists()
    with pytest.raises(LinkGone):
        store.get(name)


def test_closing_a_store_removes_the_temporary_directory_it_made() -> None:
    store = FileStore(ttl=10)
    name, path = store.new_path("link-json")
    write_export(path, iter(MESSAGES[:1]), "link-json")
    store.publish(name, "link-json")
    store.close()
    assert not store.directory.exists()
