"""Many callbacks at once against the live service: each export commits once, with exact rows,
and concurrent copies of one callback are all stored but only one of them counts."""

from __future__ import annotations

import asyncio
import io
import json
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
from prometheus_client import REGISTRY

from simulator.corpus import MessageCorpus
from storage.layout import Window, manifest_key
from storage.ledger import ExportAttempt
from storage.lifecycle import WindowState
from storage.schema import STREAM
from tests.harness import archived_as_api_records
from tests.service import RunningService, running_service

HOUR = timedelta(hours=1)
FIRST = datetime(2026, 3, 1, tzinfo=UTC)
CORPUS = MessageCorpus(seed=23, messages_per_day=960)
DISTINCT = 50
COPIES = 10


def _messages(window: Window) -> list[dict[str, Any]]:
    return list(CORPUS.between(window.start, window.end))


def _body(window: Window, index: int) -> bytes:
    """Inline bodies of the two common shapes, alternating: NDJSON, and JSON with `data`."""
    messages = _messages(window)
    if index % 2:
        return json.dumps({"status": "completed", "data": messages}).encode()
    return b"".join(json.dumps(message).encode() + b"\n" for message in messages)


async def _post_all(requests: list[tuple[str, bytes]]) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=len(requests))
    async with httpx.AsyncClient(limits=limits, timeout=60) as client:
        return await asyncio.gather(*(client.post(url, content=body) for url, body in requests))


def _wait_committed(service: RunningService, windows: list[Window], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        states = Counter(
            record.state
            for record in service.ledger.windows(STREAM)
            if record.window in set(windows)
        )
        if states.get(WindowState.COMMITTED) == len(windows):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"windows by state: {dict(states)}")
        time.sleep(0.1)


def _window_table(
    service: RunningService, window: Window
) -> tuple[dict[str, Any], pa.Table | None]:
    """The window's manifest and the rows of the parts it lists, as a reader trusts them."""
    manifest = json.loads(service.store.get_bytes(manifest_key(window)))
    tables = [
        pq.read_table(io.BytesIO(service.store.get_bytes(p["key"]))) for p in manifest["parts"]
    ]
    return manifest, pa.concat_tables(tables) if tables else None


def _processed(outcome: str) -> float:
    return REGISTRY.get_sample_value("archiver_windows_processed_total", {"outcome": outcome}) or 0


def test_concurrent_callbacks_commit_each_export_once_and_copies_count_once(
    tmp_path: Path,
) -> None:
    with running_service(tmp_path) as service:
        windows = [Window(FIRST + i * HOUR, FIRST + (i + 1) * HOUR) for i in range(DISTINCT + 1)]
        attempts: dict[Window, ExportAttempt] = {w: service.export_for(w) for w in windows}
        copied = windows[-1]
        requests = [
            (service.callback_url(attempts[window]), _body(window, index))
            for index, window in enumerate(windows[:DISTINCT])
        ]
        copy_body = _body(copied, 0)
        requests += [(service.callback_url(attempts[copied]), copy_body)] * COPIES

        committed_before = _processed("committed")
        answers = asyncio.run(_post_all(requests))

        assert [answer.status_code for answer in answers] == [200] * len(requests)
        statuses = [answer.json()["status"] for answer in answers]
        assert statuses[:DISTINCT] == ["accepted"] * DISTINCT
        assert Counter(statuses[DISTINCT:]) == {"accepted": 1, "duplicate": COPIES - 1}
        _wait_committed(service, windows)
        deadline = time.monotonic() + 5
        while _processed("committed") - committed_before < len(windows):
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert _processed("committed") - committed_before == len(windows)

        for window in windows:
            attempt = attempts[window]
            record = service.ledger.window(STREAM, window)
            assert record is not None and record.export_id == attempt.export_id
            expected = {m["id"]: m for m in _messages(window)}
            manifest, table = _window_table(service, window)
            assert manifest["export_id"] == attempt.export_id
            assert manifest["rows"] == record.rows == len(expected)
            if table is None:
                assert expected == {}
                continue
            assert table.num_rows == len(expected)
            assert archived_as_api_records(table) == expected
            assert set(table.column("_export_id").to_pylist()) == {attempt.export_id}

        copies = service.ledger.callbacks(attempts[copied].export_id)
        assert Counter(c.state for c in copies) == {"processed": 1, "duplicate": COPIES - 1}
        raw = [
            info.key
            for info in service.store.list(f"_raw/{attempts[copied].export_id}/")
            if info.key.endswith(".body")
        ]
        assert len(raw) == COPIES
        assert all(service.store.get_bytes(key) == copy_body for key in raw)
        for window in windows[:DISTINCT]:
            [callback] = service.ledger.callbacks(attempts[window].export_id)
            assert callback.state == "processed"
