"""The service in-process under uvicorn, with a local archive and a SQLite ledger, for tests
that exercise the receiver without the cost of a subprocess."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from starlette.applications import Starlette

from archiver.service import build_service
from archiver.settings import Settings
from storage.layout import Window
from storage.ledger import ExportAttempt, Ledger
from storage.objectstore import ObjectStore, open_store
from storage.schema import STREAM
from tests.servers import free_port, serve_in_thread


@dataclass
class RunningService:
    url: str
    ledger: Ledger
    store: ObjectStore
    settings: Settings

    def export_for(self, window: Window) -> ExportAttempt:
        """A window in state `requested` with a live export id and token, as after a request.

        The service's own start-up tick may claim the window first (and fail to send it to its
        unused upstream); asking again takes it back, as `export` would."""
        self.ledger.plan(STREAM, [window])
        for _ in range(5):
            self.ledger.force_due(
                STREAM, [window], include_committed=True, rerequest=True, now=datetime.now(UTC)
            )
            claimed = self.ledger.claim_due(
                STREAM,
                datetime.now(UTC),
                limit=1,
                callback_timeout=timedelta(hours=6),
                max_attempts=5,
            )
            if claimed:
                [attempt] = claimed
                assert attempt.window == window
                return attempt
        raise AssertionError(f"could not claim {window} for a test export")

    def callback_url(self, attempt: ExportAttempt) -> str:
        return f"{self.url}/callbacks/{attempt.export_id}/{attempt.token}"


@contextmanager
def running_service(tmp_path: Path, **overrides: Any) -> Iterator[RunningService]:
    port = free_port()
    settings = Settings(
        api_url="http://127.0.0.1:9",
        api_key="unused-key",
        public_url=f"http://127.0.0.1:{port}",
        allow_insecure_callbacks=True,
        download_allow_private=True,
        storage_url=f"file://{tmp_path}/archive",
        ledger_url=f"sqlite:///{tmp_path}/ledger.db",
        worker_poll=timedelta(seconds=0.2),
        request_interval=timedelta(hours=1),
    )
    settings = replace(settings, **overrides)
    ledger = Ledger.open(settings.ledger_url)
    store = open_store(settings.storage_url, settings.s3)
    try:
        app = build_service(settings, ledger, store)
        with serve_in_thread(app, port=port) as url:
            _wait_for_catch_up(app)
            yield RunningService(url, ledger, store, settings)
    finally:
        ledger.close()


def _wait_for_catch_up(app: Starlette, timeout: float = 15.0) -> None:
    """Waits out the service's start-up tick, so it cannot claim a window a test is preparing."""
    deadline = time.monotonic() + timeout
    while not app.state.catch_up.done():
        if time.monotonic() > deadline:
            raise AssertionError("the service's start-up tick did not finish")
        time.sleep(0.02)
