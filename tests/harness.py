"""The service as a real subprocess, and reading back what it wrote, for end-to-end tests."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.parquet as pq

from scheduler.planner import align_down
from simulator.config import SimulatorConfig
from simulator.corpus import MessageCorpus
from storage.layout import Window
from storage.ledger import Ledger, WindowRecord
from storage.objectstore import ObjectStore
from storage.schema import STREAM
from tests.servers import free_port

API_KEY = "test-api-key-0123456789"
HOUR = timedelta(hours=1)


def service_env(
    *,
    api_url: str,
    ledger_url: str,
    storage_url: str,
    port: int,
    s3_endpoint: str | None = None,
    **extra: str,
) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "ARCHIVER_API_URL": api_url,
        "ARCHIVER_API_KEY": API_KEY,
        "ARCHIVER_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "ARCHIVER_ALLOW_INSECURE_CALLBACKS": "1",
        "ARCHIVER_DOWNLOAD_ALLOW_PRIVATE": "1",
        "ARCHIVER_PORT": str(port),
        "ARCHIVER_LEDGER_URL": ledger_url,
        "ARCHIVER_STORAGE_URL": storage_url,
        "ARCHIVER_SETTLE_DELAY": "0s",
        "ARCHIVER_REQUEST_PACING": "0s",
        "ARCHIVER_REQUEST_INTERVAL": "1s",
        "ARCHIVER_WORKER_POLL": "1s",
    }
    if s3_endpoint:
        env["ARCHIVER_S3_ENDPOINT_URL"] = s3_endpoint
    env.update(extra)
    return env


class ServiceProcess:
    """`chat-archiver serve` in a subprocess, so tests can SIGKILL it like an OOM kill would."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = env
        self.port = int(env["ARCHIVER_PORT"])
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        # What starts `serve`; a test may wrap it (in a private mount namespace, say).
        self.argv = [sys.executable, "-m", "archiver.cli", "serve"]

    def start(self, timeout: float = 30.0) -> ServiceProcess:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            self.argv,
            env=self.env,
            stdout=log,
            stderr=log,
        )
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"serve exited {self.process.returncode}: {self.logs()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"serve did not come up: {self.logs()}")
            time.sleep(0.1)

    def logs(self, tail: int | None = 4000) -> str:
        text = self.log_path.read_text(errors="replace")
        return text[-tail:] if tail else text

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def terminate(self, timeout: float = 40.0) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)


@contextmanager
def running_service(env: dict[str, str], log_path: Path) -> Iterator[ServiceProcess]:
    service = ServiceProcess(env, log_path).start()
    try:
        yield service
    finally:
        service.kill()


def wait_for_states(
    ledger: Ledger, expected: int, states: tuple[str, ...] = ("committed",), timeout: float = 60.0
) -> list[WindowRecord]:
    deadline = time.monotonic() + timeout
    while True:
        records = ledger.windows(STREAM)
        done = [r for r in records if r.state in states]
        if len(done) >= expected:
            return records
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {expected} {states}: {records}")
        time.sleep(0.1)


def read_archive(store: ObjectStore) -> pa.Table:
    """Every committed row, as a warehouse would read it."""
    tables = []
    for info in store.list(f"{STREAM}/"):
        if info.key.endswith(".parquet"):
            tables.append(pq.read_table(io.BytesIO(store.get_bytes(info.key))))
    if not tables:
        from storage.schema import MESSAGE_SCHEMA

        return MESSAGE_SCHEMA.empty_table()
    return pa.concat_tables(tables)


def expected_rows(messages: list[dict[str, object]]) -> dict[str, dict[str, object]]:
    return {str(message["id"]): message for message in messages}


def archived_as_api_records(table: pa.Table) -> dict[str, dict[str, object]]:
    """Rows turned back into the upstream's field names and ISO strings, for comparison."""
    out: dict[str, dict[str, object]] = {}
    for row in table.to_pylist():
        out[row["id"]] = {
            "id": row["id"],
            "chatId": row["chat_id"],
            "chatThreadId": row["chat_thread_id"],
            "content": row["content"],
            "rawContent": row["raw_content"],
            "externalId": row["external_id"],
            "role": row["role"],
            "senderId": row["sender_id"],
            "createdAt": _iso_millis(row["created_at"]),
            "updatedAt": _iso_millis(row["updated_at"]),
        }
    return out


def _iso_millis(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


__all__ = ["API_KEY", "free_port"]


def loopback_simulator(seed: int, messages_per_day: int, **changes: Any) -> SimulatorConfig:
    """The simulator as the end-to-end tests run it: quick callbacks to an http receiver."""
    values: dict[str, Any] = {
        "api_key": API_KEY,
        "seed": seed,
        "messages_per_day": messages_per_day,
        "allow_insecure_callbacks": True,
        "callback_delay": 0.05,
        "callback_retry_delay": 0.2,
    }
    return SimulatorConfig(**(values | changes))


def expected_messages(
    seed: int, messages_per_day: int, windows: list[Window]
) -> dict[str, dict[str, Any]]:
    """What the simulator exports for `windows`, by message id."""
    corpus = MessageCorpus(seed, messages_per_day)
    return {str(m["id"]): m for w in windows for m in corpus.between(w.start, w.end)}


def recent_hours(count: int) -> list[Window]:
    """The last `count` finished one-hour windows, oldest first."""
    start = align_down(datetime.now(UTC), HOUR) - count * HOUR
    return [Window(start + i * HOUR, start + (i + 1) * HOUR) for i in range(count)]
