"""The export file behind a link is kept in `_raw/`, so `replay` never needs the link: after the
simulator's link expired, replay rebuilds identical parts; with the kept file gone too, replay
leaves the committed window alone and says so in one line. `prune-raw` bounds `_raw/` without
touching what a quarantined window needs."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from scheduler.planner import align_down
from simulator.app import create_app as create_simulator
from storage.layout import Window, manifest_key
from storage.ledger import Ledger, WindowRecord
from storage.objectstore import ObjectStore, open_store
from storage.schema import STREAM
from tests.harness import API_KEY, archived_as_api_records, expected_messages, loopback_simulator
from tests.servers import serve_in_thread
from tests.service import running_service

HOUR = timedelta(hours=1)
SEED, PER_DAY = 23, 2400


@pytest.fixture
def simulator_url() -> Iterator[str]:
    with serve_in_thread(create_simulator(loopback_simulator(SEED, PER_DAY))) as url:
        yield url


def _cli(home: Path, *args: str, **settings: str) -> subprocess.CompletedProcess[str]:
    env = {
        "ARCHIVER_LEDGER_URL": f"sqlite:///{home}/ledger.db",
        "ARCHIVER_STORAGE_URL": f"file://{home}/archive",
        "ARCHIVER_ALLOW_INSECURE_CALLBACKS": "1",
        "ARCHIVER_DOWNLOAD_ALLOW_PRIVATE": "1",
        **settings,
    }
    return subprocess.run(
        [sys.executable, "-m", "archiver.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _committed(ledger: Ledger, window: Window, timeout: float = 30) -> WindowRecord:
    deadline = time.monotonic() + timeout
    while True:
        record = ledger.window(STREAM, window)
        if record is not None and record.state == "committed":
            return record
        if time.monotonic() > deadline:
            raise AssertionError(f"window not committed: {record}")
        time.sleep(0.05)


def _parts(store: ObjectStore, window: Window) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = json.loads(store.get_bytes(manifest_key(window)))["parts"]
    return parts


def _archive_once(home: Path, simulator_url: str) -> tuple[Window, str, str]:
    """One window archived through the simulator's link; its window, export id and raw body key."""
    window_start = align_down(datetime.now(UTC), HOUR) - HOUR
    window = Window(window_start, window_start + HOUR)
    with running_service(
        home,
        api_url=simulator_url,
        api_key=API_KEY,
        window=HOUR,
        start=window.start,
        settle_delay=timedelta(0),
        request_interval=timedelta(seconds=0.5),
        request_pacing=timedelta(0),
    ) as service:
        record = _committed(service.ledger, window)
        assert record.export_id is not None
        [callback] = service.ledger.callbacks(record.export_id)
    return window, record.export_id, callback.raw_key


def test_replay_after_the_link_expired_rebuilds_identical_parts_from_the_kept_file(
    tmp_path: Path, simulator_url: str
) -> None:
    window, export_id, body_key = _archive_once(tmp_path, simulator_url)
    store = open_store(f"file://{tmp_path}/archive")
    kept_key = body_key.removesuffix(".body") + ".download"
    kept = store.get_bytes(kept_key)
    meta = json.loads(store.get_bytes(body_key.removesuffix(".body") + ".json"))
    assert meta["download"]["bytes"] == len(kept)
    assert meta["download"]["sha256"] == hashlib.sha256(kept).hexdigest()
    parts_before = _parts(store, window)
    assert parts_before

    httpx.post(f"{simulator_url}/_sim/faults", json={"link_ttl": 0.001}).raise_for_status()
    link = json.loads(store.get_bytes(body_key))["url"]
    assert httpx.get(link).status_code == 410

    replay = _cli(tmp_path, "replay", export_id)

    assert replay.returncode == 0, replay.stderr
    assert "1 committed" in replay.stdout
    assert _parts(store, window) == parts_before
    expected = expected_messages(SEED, PER_DAY, [window])
    rows = archived_as_api_records(_read_parts(store, window))
    assert rows == expected
    with Ledger.open(f"sqlite:///{tmp_path}/ledger.db") as ledger:
        assert _committed(ledger, window, timeout=0).rows == len(expected)


def test_replay_whose_source_is_gone_leaves_the_window_committed_and_exits_1(
    tmp_path: Path, simulator_url: str
) -> None:
    window, export_id, body_key = _archive_once(tmp_path, simulator_url)
    store = open_store(f"file://{tmp_path}/archive")
    parts_before = _parts(store, window)
    manifest_before = store.get_bytes(manifest_key(window))
    httpx.post(f"{simulator_url}/_sim/faults", json={"link_ttl": 0.001}).raise_for_status()
    store.delete(body_key.removesuffix(".body") + ".download")

    replay = _cli(tmp_path, "replay", export_id)

    assert replay.returncode == 1
    [line] = replay.stderr.strip().splitlines()
    assert export_id in line and "was not kept" in line and "410" in line
    assert store.get_bytes(manifest_key(window)) == manifest_before
    assert _parts(store, window) == parts_before
    with Ledger.open(f"sqlite:///{tmp_path}/ledger.db") as ledger:
        record = _committed(ledger, window, timeout=0)
        assert record.export_id == export_id


def _read_parts(store: ObjectStore, window: Window) -> pa.Table:
    return pa.concat_tables(
        pq.read_table(io.BytesIO(store.get_bytes(part["key"]))) for part in _parts(store, window)
    )


def test_prune_raw_deletes_what_committed_windows_no_longer_need_and_keeps_quarantined(
    tmp_path: Path, simulator_url: str
) -> None:
    window, _, _ = _archive_once(tmp_path, simulator_url)
    stuck = Window(window.start - HOUR, window.start)
    with running_service(tmp_path) as service:
        attempt = service.export_for(stuck)
        httpx.post(service.callback_url(attempt), content=b"\x00 not an export").raise_for_status()
        deadline = time.monotonic() + 20
        while (record := service.ledger.window(STREAM, stuck)) and record.state != "quarantined":
            assert time.monotonic() < deadline, record
            time.sleep(0.05)
    store = open_store(f"file://{tmp_path}/archive")
    assert len(list(store.list("_raw/"))) == 5
    newest = max(info.key for info in store.list("_raw/"))
    received = datetime.strptime(newest.rsplit("/", 1)[1][:22], "%Y%m%dT%H%M%S%fZ")
    while datetime.now(UTC) < received.replace(tzinfo=UTC) + timedelta(seconds=1.1):
        time.sleep(0.05)

    pruned = _cli(tmp_path, "prune-raw", ARCHIVER_RAW_RETENTION="1s")

    assert pruned.returncode == 0, pruned.stderr
    assert "deleted 3 objects" in pruned.stdout and "kept 2" in pruned.stdout
    left = [info.key for info in store.list("_raw/")]
    assert len(left) == 2 and all(key.startswith(f"_raw/{attempt.export_id}/") for key in left)
    status = json.loads(_cli(tmp_path, "status", "--json").stdout)
    assert (status["raw_store"]["objects"], status["by_state"]["committed"]) == (2, 1)
