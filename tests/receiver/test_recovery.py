"""A `serve` killed (SIGKILL) while it processes a window, right after answering the callback,
and started again: the new process sees that the old one is dead and takes the window over at
once, with the default lease of two minutes. On SQLite and on Postgres."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from simulator.corpus import MessageCorpus
from storage.layout import Window
from storage.ledger import ExportAttempt, Ledger
from storage.lifecycle import WindowState
from storage.schema import STREAM
from tests.harness import ServiceProcess, service_env
from tests.servers import free_port, serve_in_thread

WINDOW = Window(datetime(2026, 2, 3, tzinfo=UTC), datetime(2026, 2, 4, tzinfo=UTC))
MESSAGES = list(MessageCorpus(seed=31, messages_per_day=200).between(WINDOW.start, WINDOW.end))
# Committed within this after the restart is up (the target: 10 s plus processing).
TARGET_SECONDS = 10.0


class StallingFile:
    """Serves the export file; the first download stalls after a few bytes until released, so
    the service can be killed while it holds the window's lease."""

    def __init__(self) -> None:
        self.payload = "".join(json.dumps(m) + "\n" for m in MESSAGES).encode()
        self.started = threading.Event()
        self.released = threading.Event()

    def app(self) -> Starlette:
        async def serve_file(request: Request) -> Response:
            if self.started.is_set():
                return Response(self.payload, media_type="application/x-ndjson")
            self.started.set()

            async def body() -> AsyncIterator[bytes]:
                yield self.payload[:10]
                while not self.released.is_set():
                    await asyncio.sleep(0.05)
                yield self.payload[10:]

            return StreamingResponse(body(), media_type="application/x-ndjson")

        return Starlette(routes=[Route("/export.ndjson", serve_file)])


@pytest.fixture
def stalling() -> Iterator[tuple[StallingFile, str]]:
    files = StallingFile()
    with serve_in_thread(files.app()) as url:
        try:
            yield files, url
        finally:
            files.released.set()


def _export(ledger: Ledger) -> ExportAttempt:
    ledger.plan(STREAM, [WINDOW])
    # The service's start-up tick may claim the window first (and fail on its unused
    # upstream); asking again takes it back, as `export` would.
    for _ in range(5):
        ledger.force_due(
            STREAM, [WINDOW], include_committed=True, rerequest=True, now=datetime.now(UTC)
        )
        claimed = ledger.claim_due(
            STREAM, datetime.now(UTC), limit=1, callback_timeout=timedelta(hours=6), max_attempts=5
        )
        if claimed:
            return claimed[0]
    raise AssertionError("could not claim the window for a test export")


def _state(ledger: Ledger) -> WindowState | None:
    record = ledger.window(STREAM, WINDOW)
    return record.state if record else None


def test_a_restarted_serve_takes_over_its_dead_predecessors_window_at_once(
    ledger_url: str, stalling: tuple[StallingFile, str], tmp_path: Path
) -> None:
    files, files_url = stalling
    env = service_env(
        api_url="http://127.0.0.1:9",
        ledger_url=ledger_url,
        storage_url=f"file://{tmp_path}/archive",
        port=free_port(),
    )
    for default in ("ARCHIVER_WORKER_POLL",):
        env.pop(default)  # the defaults: 2 min lease, 5 s worker poll
    ledger = Ledger.open(ledger_url)
    service = ServiceProcess(env, tmp_path / "serve.log").start()
    try:
        attempt = _export(ledger)
        callback = f"{service.url}/callbacks/{attempt.export_id}/{attempt.token}"
        notice = {"status": "completed", "url": f"{files_url}/export.ndjson"}
        assert httpx.post(callback, json=notice, timeout=30).json() == {"status": "accepted"}
        assert files.started.wait(30), service.logs()
        service.kill()
        assert _state(ledger) == WindowState.RECEIVED

        service.start()
        restarted = time.monotonic()
        while _state(ledger) != WindowState.COMMITTED:
            assert time.monotonic() - restarted < TARGET_SECONDS, service.logs()
            time.sleep(0.05)
        took = time.monotonic() - restarted
    finally:
        service.kill()
        ledger.close()
    print(f"committed {took:.2f} s after the restarted serve was up")
    assert took < TARGET_SECONDS
    assert "lease_taken_over" in service.logs(tail=None)
    with Ledger.open(ledger_url) as again:
        record = again.window(STREAM, WINDOW)
        assert record is not None and record.rows == len(MESSAGES)
