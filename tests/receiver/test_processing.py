"""What processing makes of each kind of callback, against the live service: failure notices,
expired links, rows that do not fit, schema drift, localised CSV and compressed bodies."""

from __future__ import annotations

import csv
import gzip
import io
import itertools
import json
import logging
import time
import uuid
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from archiver.status_report import status_document
from receiver.decoding.labels import LABELS
from simulator.corpus import MessageCorpus
from simulator.files import write_export
from storage.layout import Window, manifest_key, raw_body_key, rejects_key
from storage.ledger import ExportAttempt, WindowRecord
from storage.schema import STREAM
from tests.harness import archived_as_api_records
from tests.servers import serve_in_thread
from tests.service import RunningService, running_service

WINDOW = Window(datetime(2026, 2, 1, tzinfo=UTC), datetime(2026, 2, 2, tzinfo=UTC))
CORPUS = MessageCorpus(seed=5, messages_per_day=200)


@pytest.fixture
def service(tmp_path: Path) -> Iterator[RunningService]:
    with running_service(tmp_path) as running:
        yield running


def _wait_state(
    service: RunningService, window: Window, state: str, timeout: float = 20
) -> WindowRecord:
    deadline = time.monotonic() + timeout
    while True:
        record = service.ledger.window(STREAM, window)
        if record and record.state == state:
            return record
        if time.monotonic() > deadline:
            raise AssertionError(f"window is {record.state if record else None}, not {state}")
        time.sleep(0.05)


def _next_attempt(service: RunningService, max_attempts: int = 5) -> ExportAttempt:
    """What the scheduler's next request tick does, once the retry delay has passed."""
    [attempt] = service.ledger.claim_due(
        STREAM,
        datetime.now(UTC) + timedelta(minutes=2),
        limit=1,
        callback_timeout=timedelta(hours=6),
        max_attempts=max_attempts,
    )
    return attempt


def _committed_table(service: RunningService, window: Window) -> tuple[dict[str, Any], pa.Table]:
    """The manifest and the rows of the parts it lists: what a reader of the archive sees."""
    manifest = json.loads(service.store.get_bytes(manifest_key(window)))
    tables = [
        pq.read_table(io.BytesIO(service.store.get_bytes(p["key"]))) for p in manifest["parts"]
    ]
    return manifest, pa.concat_tables(tables)


def _ndjson(messages: list[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(message).encode() + b"\n" for message in messages)


def _message(**fields: Any) -> dict[str, Any]:
    base = {
        "id": str(uuid.uuid4()),
        "chatId": str(uuid.uuid4()),
        "chatThreadId": None,
        "content": "hola",
        "rawContent": None,
        "externalId": None,
        "role": "user",
        "senderId": str(uuid.uuid4()),
        "createdAt": "2026-02-01T10:00:00.000Z",
        "updatedAt": "2026-02-01T10:00:00.000Z",
    }
    base.update(fields)
    return base


def test_a_failure_notice_makes_the_window_due_again_until_max_attempts_then_failed(
    tmp_path: Path,
) -> None:
    with running_service(tmp_path, max_attempts=2) as service:
        first = service.export_for(WINDOW)
        notice = {"status": "failed", "error": "export quota exceeded"}
        assert httpx.post(service.callback_url(first), json=notice).json() == {"status": "accepted"}
        record = _wait_state(service, WINDOW, "planned")
        assert record.attempts == 1
        assert "export quota exceeded" in (record.reason or "")
        assert record.next_request_at is not None and record.next_request_at > record.updated_at

        second = _next_attempt(service, max_attempts=2)
        assert (second.window, second.attempt) == (WINDOW, 2)
        assert second.export_id != first.export_id
        httpx.post(service.callback_url(second), json=notice).raise_for_status()
        record = _wait_state(service, WINDOW, "failed")
        assert record.attempts == 2
        assert "export quota exceeded" in (record.reason or "")

        summary = service.ledger.summary(STREAM)
        [problem] = status_document(summary, datetime.now(UTC), api_key_rejected=False)["problems"]
        assert (problem["state"], problem["attempts"]) == ("failed", 2)
        assert "export quota exceeded" in problem["reason"]
        assert {c.state for c in service.ledger.callbacks(second.export_id)} == {"failed"}


def test_an_expired_download_link_makes_the_window_requested_again(
    service: RunningService,
) -> None:
    async def gone(request: Request) -> Response:
        return JSONResponse({"message": "link expired"}, status_code=410)

    with serve_in_thread(Starlette(routes=[Route("/export.ndjson", gone)])) as files:
        first = service.export_for(WINDOW)
        notice = {"status": "completed", "url": f"{files}/export.ndjson"}
        httpx.post(service.callback_url(first), json=notice).raise_for_status()
        record = _wait_state(service, WINDOW, "planned")
    assert record.attempts == 1
    assert "answered 410: expired" in (record.reason or "")
    again = _next_attempt(service)
    assert (again.window, again.attempt) == (WINDOW, 2)
    assert service.ledger.window(STREAM, WINDOW).state == "requested"  # type: ignore[union-attr]


def test_rows_that_cannot_fit_are_rejected_with_a_reason_and_the_rest_kept_exactly(
    service: RunningService,
) -> None:
    long_content = "x" * 99_990 + "ñ" * 20_010
    kept = [
        _message(content=long_content),
        _message(createdAt="2026-02-01T09:30:00.123+05:30", updatedAt="2026-02-01T01:00:00-03:00"),
        _message(score=42, meta={"a": 1}),
    ]
    no_id = _message(id=None)
    no_id.pop("id")
    bad_time = _message(createdAt="yesterday at noon")
    attempt = service.export_for(WINDOW)
    body = _ndjson([kept[0], no_id, kept[1], bad_time, kept[2]])
    httpx.post(service.callback_url(attempt), content=body).raise_for_status()
    record = _wait_state(service, WINDOW, "committed")

    assert (record.rows, record.rejects) == (3, 2)
    manifest, table = _committed_table(service, WINDOW)
    assert (manifest["rows"], manifest["rejects"]) == (3, 2)
    rejects = [
        json.loads(line)
        for line in service.store.get_bytes(rejects_key(WINDOW)).decode().splitlines()
    ]
    assert [r["reason"] for r in rejects] == [
        "missing id",
        "createdAt is not an ISO-8601 date-time: 'yesterday at noon'",
    ]
    assert rejects[0]["record"]["chatId"] == no_id["chatId"]
    assert rejects[1]["record"]["id"] == bad_time["id"]

    assert table.schema.field("created_at").type == pa.timestamp("us", tz="UTC")
    rows = {row["id"]: row for row in table.to_pylist()}
    assert set(rows) == {m["id"] for m in kept}
    assert rows[kept[0]["id"]]["content"] == long_content
    shifted = rows[kept[1]["id"]]
    assert shifted["created_at"] == datetime(2026, 2, 1, 4, 0, 0, 123000, tzinfo=UTC)
    assert shifted["updated_at"] == datetime(2026, 2, 1, 4, 0, 0, tzinfo=UTC)
    assert rows[kept[2]["id"]]["extra"] == '{"meta":{"a":1},"score":42}'
    assert rows[kept[0]["id"]]["extra"] is None


def _spanish_csv(messages: list[dict[str, Any]], path: Path) -> bytes:
    """The labels of the README's table (the platform's first spelling), in a shuffled order."""
    fields = ["createdAt", "content", "id", "role", "chatId", "updatedAt"]
    fields += ["senderId", "chatThreadId", "externalId", "rawContent"]
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow([LABELS[field]["esEs"][0] for field in fields])
        for message in messages:
            writer.writerow(["" if message[f] is None else message[f] for f in fields])
    return path.read_bytes()


def _simulator_csv(messages: list[dict[str, Any]], path: Path) -> bytes:
    """The simulator's Spanish export file, with its own spelling of some labels."""
    write_export(path, messages, "link-csv", language="esEs")
    return path.read_bytes()


@pytest.mark.parametrize("encode", [_spanish_csv, _simulator_csv], ids=["readme", "simulator"])
def test_a_csv_body_with_spanish_header_labels_commits_exact_rows(
    service: RunningService, tmp_path: Path, encode: Any
) -> None:
    messages = list(CORPUS.between(WINDOW.start, WINDOW.end))
    body = encode(messages, tmp_path / "export.csv")
    assert body.startswith((b"Creado en,Contenido,ID,", b"ID,ID del chat,"))
    attempt = service.export_for(WINDOW)
    httpx.post(service.callback_url(attempt), content=body).raise_for_status()
    record = _wait_state(service, WINDOW, "committed")
    assert record.rows == len(messages)
    _, table = _committed_table(service, WINDOW)
    assert archived_as_api_records(table) == {m["id"]: m for m in messages}


def _gzip_ndjson(messages: list[dict[str, Any]]) -> bytes:
    return gzip.compress(_ndjson(messages))


def _zip_json(messages: list[dict[str, Any]]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        half = len(messages) // 2
        archive.writestr("part-1.json", json.dumps(messages[:half]))
        archive.writestr("part-2.ndjson", _ndjson(messages[half:]))
    return buffer.getvalue()


@pytest.mark.parametrize("encode", [_gzip_ndjson, _zip_json], ids=["gzip-ndjson", "zip-json"])
def test_compressed_inline_bodies_commit_exact_rows(service: RunningService, encode: Any) -> None:
    messages = list(CORPUS.between(WINDOW.start, WINDOW.end))
    attempt = service.export_for(WINDOW)
    httpx.post(service.callback_url(attempt), content=encode(messages)).raise_for_status()
    record = _wait_state(service, WINDOW, "committed")
    assert record.rows == len(messages)
    _, table = _committed_table(service, WINDOW)
    assert archived_as_api_records(table) == {m["id"]: m for m in messages}


def test_a_window_that_keeps_failing_backs_off_and_does_not_hold_up_later_windows(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A received callback whose raw object is gone (a lifecycle rule, a manual delete) fails
    on every try; later windows must still commit, and the failing one must not spin."""
    caplog.set_level(logging.ERROR, logger="chat_archiver.receiver.worker")
    later = Window(WINDOW.end, WINDOW.end + timedelta(days=1))
    with running_service(tmp_path) as service:
        broken = service.export_for(WINDOW)
        now = datetime.now(UTC)
        callback_id = uuid.uuid4().hex
        service.ledger.record_callback(
            export_id=broken.export_id,
            callback_id=callback_id,
            received_at=now,
            raw_key=raw_body_key(broken.export_id, now, callback_id),
            body_sha256="0" * 64,
            size=2,
        )
        attempt = service.export_for(later)
        messages = list(CORPUS.between(later.start, later.end))
        httpx.post(service.callback_url(attempt), content=_ndjson(messages)).raise_for_status()
        record = _wait_state(service, later, "committed", timeout=15)
        assert record.rows == len(messages)
        time.sleep(2)
        assert service.ledger.window(STREAM, WINDOW).state == "received"  # type: ignore[union-attr]
    tries = [r.created for r in caplog.records if r.getMessage() == "window_processing_error"]
    assert len(tries) >= 2
    poll = service.settings.worker_poll.total_seconds()
    gaps = [after - before for before, after in itertools.pairwise(tries)]
    assert all(gap >= 0.95 * poll * 2**n for n, gap in enumerate(gaps)), gaps
