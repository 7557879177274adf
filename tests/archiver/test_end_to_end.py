"""The whole loop on loopback: simulator → `serve` (a real subprocess) → moto S3 → Parquet."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from scheduler.planner import align_down
from simulator.app import create_app as create_simulator
from simulator.config import SimulatorConfig
from simulator.corpus import MessageCorpus
from storage.layout import Window, manifest_key
from storage.ledger import Ledger
from storage.schema import STREAM
from storage.stores import S3Options, open_store
from tests.harness import (
    API_KEY,
    ServiceProcess,
    archived_as_api_records,
    read_archive,
    running_service,
    service_env,
    wait_for_states,
)
from tests.servers import free_port, serve_in_thread

DAY = timedelta(days=1)
SEED = 11
PER_DAY = 120


def _today() -> datetime:
    return align_down(datetime.now(UTC), DAY)


def _expected(windows: list[Window], per_day: int = PER_DAY) -> dict[str, dict[str, object]]:
    corpus = MessageCorpus(SEED, per_day)
    return {str(m["id"]): m for window in windows for m in corpus.between(window.start, window.end)}


@pytest.fixture
def simulator_config() -> SimulatorConfig:
    return SimulatorConfig(
        api_key=API_KEY,
        seed=SEED,
        messages_per_day=PER_DAY,
        allow_insecure_callbacks=True,
        callback_delay=0.05,
        callback_retry_delay=0.2,
    )


@pytest.fixture
def simulator_url(simulator_config: SimulatorConfig) -> Iterator[str]:
    with serve_in_thread(create_simulator(simulator_config)) as url:
        yield url


@pytest.fixture
def s3_url(s3_bucket: str) -> str:
    return f"s3://{s3_bucket}/lake"


@pytest.fixture
def env(simulator_url: str, s3_url: str, s3_endpoint: str, tmp_path: Path) -> dict[str, str]:
    return service_env(
        api_url=simulator_url,
        ledger_url=f"sqlite:///{tmp_path}/ledger.db",
        storage_url=s3_url,
        port=free_port(),
        s3_endpoint=s3_endpoint,
    )


def _store(env: dict[str, str]):  # type: ignore[no-untyped-def]
    return open_store(
        env["ARCHIVER_STORAGE_URL"], S3Options(endpoint_url=env["ARCHIVER_S3_ENDPOINT_URL"])
    )


def _ledger(env: dict[str, str]) -> Ledger:
    return Ledger.open(env["ARCHIVER_LEDGER_URL"])


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "archiver.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_schedule_archives_every_window_with_exact_rows(
    env: dict[str, str], tmp_path: Path
) -> None:
    start = _today() - 2 * DAY
    env["ARCHIVER_START"] = start.isoformat()
    windows = [Window(start, start + DAY), Window(start + DAY, start + 2 * DAY)]
    with running_service(env, tmp_path / "serve.log") as service:
        ledger = _ledger(env)
        wait_for_states(ledger, 2)
    store = _store(env)
    logs = service.logs(tail=None)
    assert '"event": "window_committed"' in logs
    assert API_KEY not in logs
    tokens = [
        str(entry["callbackUrl"]).rsplit("/", 1)[1]
        for entry in httpx.get(f"{env['ARCHIVER_API_URL']}/_sim/state").json()["export_requests"]
    ]
    assert tokens and not any(token in logs for token in tokens)
    archived = archived_as_api_records(read_archive(store))
    assert archived == _expected(windows)
    for window in windows:
        manifest = json.loads(store.get_bytes(manifest_key(window)))
        assert manifest["rows"] == len(_expected([window]))
    records = {r.window: r for r in ledger.windows(STREAM)}
    assert all(records[w].state == "committed" and records[w].attempts == 1 for w in windows)


def test_export_requests_a_window_that_then_commits(env: dict[str, str], tmp_path: Path) -> None:
    window = Window(_today() - 3 * DAY, _today() - 2 * DAY)
    with running_service(env, tmp_path / "serve.log"):
        result = _cli(
            env, "export", "--start", window.start.isoformat(), "--end", window.end.isoformat()
        )
        assert result.returncode == 0, result.stderr
        ledger = _ledger(env)
        wait_for_states(ledger, 1)
    assert archived_as_api_records(read_archive(_store(env))) == _expected([window])
    status = json.loads(_cli(env, "status", "--json").stdout)
    assert status["by_state"]["committed"] == 1
    assert status["last_committed"]["window_start"] == window.start.isoformat().replace(
        "+00:00", "Z"
    )
    assert status["problems"] == []


def test_a_duplicate_callback_is_stored_and_changes_no_data(
    env: dict[str, str], simulator_url: str, tmp_path: Path
) -> None:
    httpx.post(f"{simulator_url}/_sim/faults", json={"duplicate_callbacks": 1}).raise_for_status()
    window = Window(_today() - DAY, _today())
    earlier = Window(window.start - DAY, window.start)
    env["ARCHIVER_START"] = earlier.start.isoformat()
    with running_service(env, tmp_path / "serve.log"):
        ledger = _ledger(env)
        record = wait_for_states(ledger, 2)[1]
        deadline = time.monotonic() + 20
        while len(ledger.callbacks(record.export_id or "")) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
    store = _store(env)
    callbacks = ledger.callbacks(record.export_id or "")
    assert sorted(c.state for c in callbacks) == ["duplicate", "processed"]
    raw = [i.key for i in store.list(f"_raw/{record.export_id}/") if i.key.endswith(".body")]
    assert len(raw) == 2
    assert archived_as_api_records(read_archive(store)) == _expected([earlier, window])


def test_a_window_with_no_messages_commits_with_an_empty_manifest(
    env: dict[str, str], simulator_config: SimulatorConfig, tmp_path: Path, s3_endpoint: str
) -> None:
    empty = SimulatorConfig(**{**simulator_config.__dict__, "messages_per_day": 0})
    with serve_in_thread(create_simulator(empty)) as url:
        env["ARCHIVER_API_URL"] = url
        window = Window(_today() - DAY, _today())
        env["ARCHIVER_START"] = window.start.isoformat()
        with running_service(env, tmp_path / "serve.log"):
            record = wait_for_states(_ledger(env), 1)[0]
    assert record.rows == 0
    store = _store(env)
    manifest = json.loads(store.get_bytes(manifest_key(window)))
    assert manifest["rows"] == 0 and manifest["parts"] == []
    assert [i.key for i in store.list(f"{STREAM}/")] == []


def test_wrong_token_and_unknown_export_get_404_and_store_nothing(
    env: dict[str, str], simulator_url: str, tmp_path: Path
) -> None:
    httpx.post(f"{simulator_url}/_sim/faults", json={"drop_callbacks": True}).raise_for_status()
    window = Window(_today() - DAY, _today())
    env["ARCHIVER_START"] = window.start.isoformat()
    with running_service(env, tmp_path / "serve.log") as service:
        ledger = _ledger(env)
        wait_for_states(ledger, 1, states=("requested",))
        export_id = ledger.windows(STREAM)[0].export_id
        wrong = httpx.post(f"{service.url}/callbacks/{export_id}/{'x' * 43}", content=b"{}")
        unknown = httpx.post(f"{service.url}/callbacks/{'0' * 32}/{'x' * 43}", content=b"{}")
        tricks = httpx.post(f"{service.url}/callbacks/..%2F..%2Fetc/{'x' * 43}", content=b"{}")
    assert (wrong.status_code, unknown.status_code) == (404, 404)
    assert wrong.json() == unknown.json()
    assert tricks.status_code == 404
    assert list(_store(env).list("_raw/")) == []


class StallingFile:
    """A download link that sends a little and then hangs until released."""

    def __init__(self, payload: bytes) -> None:
        self.payload = payload
        self.stall = True
        self.started = threading.Event()

    def app(self) -> Starlette:
        async def serve_file(request: Request) -> Response:
            async def body() -> Iterator[bytes]:  # type: ignore[misc]
                import asyncio

                yield self.payload[:10]
                self.started.set()
                while self.stall:
                    await asyncio.sleep(0.05)
                yield self.payload[10:]

            return StreamingResponse(body(), media_type="application/gzip")

        return Starlette(routes=[Route("/export.ndjson.gz", serve_file)])


def test_a_service_killed_mid_download_after_answering_200_commits_exact_rows_on_restart(
    env: dict[str, str], simulator_url: str, tmp_path: Path
) -> None:
    httpx.post(f"{simulator_url}/_sim/faults", json={"drop_callbacks": True}).raise_for_status()
    window = Window(_today() - DAY, _today())
    env["ARCHIVER_START"] = window.start.isoformat()
    env["ARCHIVER_LEASE"] = "3s"
    expected = _expected([window])
    ndjson = "".join(json.dumps(m) + "\n" for m in expected.values()).encode()
    stalling = StallingFile(gzip.compress(ndjson))
    with serve_in_thread(stalling.app()) as file_url:
        service = ServiceProcess(env, tmp_path / "serve.log").start()
        try:
            ledger = _ledger(env)
            wait_for_states(ledger, 1, states=("requested",))
            state = httpx.get(f"{simulator_url}/_sim/state").json()
            callback = state["export_requests"][-1]["callbackUrl"]
            answer = httpx.post(
                callback, json={"status": "completed", "url": f"{file_url}/export.ndjson.gz"}
            )
            assert answer.json() == {"status": "accepted"}
            assert stalling.started.wait(20)
            service.kill()
            assert ledger.windows(STREAM)[0].state == "received"
            stalling.stall = False
            service.start()
            wait_for_states(ledger, 1, timeout=60)
        finally:
            service.kill()
    assert archived_as_api_records(read_archive(_store(env))) == expected
