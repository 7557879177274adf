"""Quarantine and `chat-archiver replay` (the real CLI): a quarantined callback shows in
`status` and `/metrics`, and replaying it commits exactly what a fresh callback would."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from simulator.corpus import MessageCorpus
from storage.layout import Window, manifest_key
from storage.ledger import Ledger, WindowRecord
from storage.objectstore import ObjectStore
from storage.schema import STREAM
from storage.stores import open_store
from tests.harness import archived_as_api_records
from tests.servers import serve_in_thread
from tests.service import RunningService, running_service

WINDOW = Window(datetime(2026, 2, 1, tzinfo=UTC), datetime(2026, 2, 2, tzinfo=UTC))
MESSAGES = list(MessageCorpus(seed=17, messages_per_day=300).between(WINDOW.start, WINDOW.end))
EXPECTED = {m["id"]: m for m in MESSAGES}
# Differ from one processing to the next by design: when, and under which export.
VOLATILE_COLUMNS = ("_ingested_at", "_export_id")
VOLATILE_MANIFEST_KEYS = ("committed_at", "ingested_at", "export_id")


class ExportFile:
    """The platform's file store behind a download link, on loopback."""

    def __init__(self) -> None:
        self.body = b"".join(json.dumps(m).encode() + b"\n" for m in MESSAGES)
        self.downloads = 0

    def app(self) -> Starlette:
        async def serve(request: Request) -> Response:
            self.downloads += 1
            return Response(self.body, media_type="application/x-ndjson")

        return Starlette(routes=[Route("/exports/chat-messages.ndjson", serve)])


@pytest.fixture
def export_file() -> Iterator[tuple[ExportFile, str]]:
    served = ExportFile()
    with serve_in_thread(served.app()) as url:
        yield served, f"{url}/exports/chat-messages.ndjson"


def _cli(tmp_path: Path, *args: str, **settings: str) -> subprocess.CompletedProcess[str]:
    env = {
        "ARCHIVER_LEDGER_URL": f"sqlite:///{tmp_path}/ledger.db",
        "ARCHIVER_STORAGE_URL": f"file://{tmp_path}/archive",
        **settings,
    }
    return subprocess.run(
        [sys.executable, "-m", "archiver.cli", *args],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _wait_state(ledger: Ledger, state: str, timeout: float = 20) -> WindowRecord:
    deadline = time.monotonic() + timeout
    while True:
        record = ledger.window(STREAM, WINDOW)
        if record and record.state == state:
            return record
        if time.monotonic() > deadline:
            raise AssertionError(f"window is {record.state if record else None}, not {state}")
        time.sleep(0.05)


def _metric(service: RunningService, name: str, labels: dict[str, str]) -> float:
    text = httpx.get(f"{service.url}/metrics").text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    return 0.0


def _archived(store: ObjectStore) -> tuple[dict[str, Any], pa.Table]:
    """The manifest and its parts' rows, without what legitimately differs between runs."""
    manifest = json.loads(store.get_bytes(manifest_key(WINDOW)))
    tables = [pq.read_table(io.BytesIO(store.get_bytes(p["key"]))) for p in manifest["parts"]]
    table = pa.concat_tables(tables).drop_columns(list(VOLATILE_COLUMNS))
    for key in VOLATILE_MANIFEST_KEYS:
        manifest.pop(key)
    for part in manifest["parts"]:
        part.pop("sha256")
        part.pop("bytes")
    return manifest, table


def _fresh_commit(tmp_path: Path, link: str) -> tuple[dict[str, Any], pa.Table]:
    """The same link, sent to a service that may download it: the reference result."""
    with running_service(tmp_path) as service:
        attempt = service.export_for(WINDOW)
        notice = {"status": "completed", "url": link}
        httpx.post(service.callback_url(attempt), json=notice).raise_for_status()
        _wait_state(service.ledger, "committed")
        return _archived(service.store)


def test_a_quarantined_link_is_reported_and_replay_commits_it_as_a_fresh_callback_would(
    tmp_path: Path, export_file: tuple[ExportFile, str]
) -> None:
    served, link = export_file
    home = tmp_path / "service"
    home.mkdir()
    with running_service(home, download_allow_private=False) as service:
        quarantined_before = _metric(
            service, "archiver_windows_processed_total", {"outcome": "quarantined"}
        )
        attempt = service.export_for(WINDOW)
        notice = {"status": "completed", "url": link}
        answer = httpx.post(service.callback_url(attempt), json=notice)
        assert answer.json() == {"status": "accepted"}
        record = _wait_state(service.ledger, "quarantined")
        assert "refused" in (record.reason or "")
        assert served.downloads == 0

        status = _cli(home, "status", "--json")
        assert status.returncode == 0, status.stderr
        [problem] = json.loads(status.stdout)["problems"]
        assert problem["state"] == "quarantined"
        assert problem["reason"] == record.reason
        assert problem["export_id"] == attempt.export_id
        assert _metric(service, "archiver_windows", {"state": "quarantined"}) == 1
        quarantined = _metric(
            service, "archiver_windows_processed_total", {"outcome": "quarantined"}
        )
        assert quarantined - quarantined_before == 1

    replay = _cli(
        home,
        "replay",
        "--quarantined",
        ARCHIVER_DOWNLOAD_ALLOW_PRIVATE="1",
        ARCHIVER_ALLOW_INSECURE_CALLBACKS="1",
    )
    assert replay.returncode == 0, replay.stderr
    assert "1 committed" in replay.stdout
    assert served.downloads == 1

    ledger = Ledger.open(f"sqlite:///{home}/ledger.db")
    try:
        record = _wait_state(ledger, "committed", timeout=0)
        assert (record.rows, record.export_id, record.reason) == (
            len(MESSAGES),
            attempt.export_id,
            None,
        )
        assert [c.state for c in ledger.callbacks(attempt.export_id)] == ["processed"]
    finally:
        ledger.close()
    store = open_store(f"file://{home}/archive")
    replayed = _archived(store)
    manifest = json.loads(store.get_bytes(manifest_key(WINDOW)))
    assert manifest["export_id"] == attempt.export_id
    assert archived_as_api_records(_parts_table(store)) == EXPECTED

    reference = tmp_path / "reference"
    reference.mkdir()
    assert replayed == _fresh_commit(reference, link)


def _parts_table(store: ObjectStore) -> pa.Table:
    manifest = json.loads(store.get_bytes(manifest_key(WINDOW)))
    return pa.concat_tables(
        pq.read_table(io.BytesIO(store.get_bytes(p["key"]))) for p in manifest["parts"]
    )


def _objects(store: ObjectStore) -> list[str]:
    return [info.key for info in store.list("")]


def test_replay_of_a_committed_export_decodes_it_again_and_leaves_the_same_objects(
    tmp_path: Path,
) -> None:
    with running_service(tmp_path) as service:
        attempt = service.export_for(WINDOW)
        body = b"".join(json.dumps(m).encode() + b"\n" for m in MESSAGES)
        httpx.post(service.callback_url(attempt), content=body).raise_for_status()
        first = _wait_state(service.ledger, "committed")
    store = open_store(f"file://{tmp_path}/archive")
    keys_before, archived_before = _objects(store), _archived(store)
    parts_before = json.loads(store.get_bytes(manifest_key(WINDOW)))["parts"]

    replay = _cli(tmp_path, "replay", attempt.export_id)

    assert replay.returncode == 0, replay.stderr
    assert "1 committed" in replay.stdout
    assert _objects(store) == keys_before
    assert _archived(store) == archived_before
    assert json.loads(store.get_bytes(manifest_key(WINDOW)))["parts"] == parts_before
    assert archived_as_api_records(_parts_table(store)) == EXPECTED
    ledger = Ledger.open(f"sqlite:///{tmp_path}/ledger.db")
    try:
        again = ledger.window(STREAM, WINDOW)
        assert again is not None and again.state == "committed"
        assert (again.rows, again.export_id) == (first.rows, attempt.export_id)
        assert again.committed_at is not None and first.committed_at is not None
        assert again.committed_at > first.committed_at
    finally:
        ledger.close()


def test_replay_of_an_unknown_export_id_exits_2_with_one_line(tmp_path: Path) -> None:
    Ledger.open(f"sqlite:///{tmp_path}/ledger.db").close()
    result = _cli(tmp_path, "replay", "0" * 32)
    assert result.returncode == 2
    assert result.stdout == ""
    [line] = result.stderr.strip().splitlines()
    assert "0" * 32 in line and "unknown export id" in line
