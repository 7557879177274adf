"""`chat-archiver backfill` as a user runs it, beside a running `serve`, against the simulator."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import boto3
import httpx
import pytest

from scheduler.planner import align_down
from simulator.app import create_app as create_simulator
from simulator.state import range_key
from storage.layout import Window, manifest_key
from storage.ledger import Ledger
from storage.objectstore import ObjectStore
from storage.schema import STREAM
from storage.stores import S3Options, open_store
from tests.harness import (
    archived_as_api_records,
    expected_messages,
    loopback_simulator,
    read_archive,
    running_service,
    service_env,
)
from tests.servers import free_port, serve_in_thread

# What the `chat-archiver` console script runs.
CHAT_ARCHIVER = [
    sys.executable,
    "-c",
    "import sys; from archiver.cli import main; sys.exit(main())",
]
HOUR = timedelta(hours=1)
SEED = 23
PER_DAY = 240


@dataclass
class Rig:
    """One simulator and one `serve` for the module; each test uses hours of its own."""

    simulator_url: str
    env: dict[str, str]
    ledger: Ledger
    store: ObjectStore
    now: datetime

    def hours(self, first: int, count: int) -> list[Window]:
        """`count` one-hour windows starting `first` hours before the current hour."""
        start = self.now - first * HOUR
        return [Window(start + i * HOUR, start + (i + 1) * HOUR) for i in range(count)]

    def backfill(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.command(*args), env=self.env | env, capture_output=True, text=True, timeout=60
        )

    def command(self, *args: str) -> list[str]:
        return [*CHAT_ARCHIVER, "backfill", *args]

    def requests(self, windows: list[Window]) -> list[int]:
        counts = httpx.get(f"{self.simulator_url}/_sim/state").json()["export_requests_by_range"]
        return [counts.get(range_key(window.start, window.end), 0) for window in windows]

    def states(self, windows: list[Window]) -> list[str]:
        records = {record.window: record.state for record in self.ledger.windows(STREAM)}
        return [records.get(window, "missing") for window in windows]

    def objects(self) -> set[str]:
        data = {info.key for info in self.store.list(f"{STREAM}/")}
        return data | {info.key for info in self.store.list("_manifests/")}


@pytest.fixture(scope="module")
def rig(s3_endpoint: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    tmp = tmp_path_factory.mktemp("backfill")
    bucket = f"backfill-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1").create_bucket(
        Bucket=bucket
    )
    config = loopback_simulator(SEED, PER_DAY)
    with serve_in_thread(create_simulator(config)) as simulator_url:
        env = service_env(
            api_url=simulator_url,
            ledger_url=f"sqlite:///{tmp}/ledger.db",
            storage_url=f"s3://{bucket}/lake",
            port=free_port(),
            s3_endpoint=s3_endpoint,
            ARCHIVER_WINDOW="1h",
            # Only backfill requests: the service's own request tick stays out of the way.
            ARCHIVER_REQUEST_INTERVAL="1h",
            ARCHIVER_MAX_ATTEMPTS="1",
        )
        with running_service(env, tmp / "serve.log"):
            ledger = Ledger.open(env["ARCHIVER_LEDGER_URL"])
            store = open_store(env["ARCHIVER_STORAGE_URL"], S3Options(endpoint_url=s3_endpoint))
            try:
                yield Rig(simulator_url, env, ledger, store, align_down(datetime.now(UTC), HOUR))
            finally:
                ledger.close()


@pytest.fixture(autouse=True)
def _fresh_simulator(rig: Rig) -> None:
    httpx.post(f"{rig.simulator_url}/_sim/reset").raise_for_status()


def _progress(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if re.match(r"\d+/\d+ windows ", line)]


def test_backfill_requests_the_missing_windows_shows_progress_and_waits_for_commits(
    rig: Rig,
) -> None:
    windows = rig.hours(30, 4)
    since = windows[0].start.isoformat()

    first = rig.backfill(
        "--since", windows[1].start.isoformat(), "--until", windows[3].start.isoformat()
    )
    assert first.returncode == 0, first.stderr
    assert rig.states(windows) == ["missing", "committed", "committed", "missing"]
    assert _progress(first.stderr)[-1].startswith(
        "2/2 windows committed, 2/2 requested, 0 in flight, 0 failed ("
    )
    assert first.stdout.strip().endswith("backfill: 2 committed, 0 failed, of 2")

    second = rig.backfill("--since", since, "--until", windows[3].end.isoformat())
    assert second.returncode == 0, second.stderr
    progress = _progress(second.stderr)
    # It starts from the two windows already committed and ends with all four.
    assert re.match(r"[234]/4 windows committed, [234]/4 requested, ", progress[0])
    assert progress[-1].startswith("4/4 windows committed")
    assert rig.states(windows) == ["committed"] * 4
    # The two windows the first run committed were not asked for again.
    assert rig.requests(windows) == [1, 1, 1, 1]
    records = {r.window: r for r in rig.ledger.windows(STREAM)}
    assert [records[w].attempts for w in windows] == [1, 1, 1, 1]
    for window in windows:
        manifest = json.loads(rig.store.get_bytes(manifest_key(window)))
        assert manifest["rows"] == len(expected_messages(SEED, PER_DAY, [window]))


def test_without_until_backfill_stops_at_the_last_window_that_has_ended(rig: Rig) -> None:
    since = rig.now - 2 * HOUR
    result = rig.backfill("--since", since.isoformat())
    assert result.returncode == 0, result.stderr
    # The open hour is not asked for: it would be committed half-full.
    done = align_down(datetime.now(UTC), HOUR)
    ended = [r for r in rig.ledger.windows(STREAM, since=since) if r.window.end <= done]
    assert [r.state for r in ended] == ["committed"] * len(ended) and len(ended) >= 2
    assert rig.ledger.windows(STREAM, since=done) == []


def test_force_requests_committed_windows_again_and_overwrites_the_same_objects(
    rig: Rig,
) -> None:
    windows = rig.hours(40, 2)
    args = ("--since", windows[0].start.isoformat(), "--until", windows[-1].end.isoformat())
    assert rig.backfill(*args).returncode == 0
    before = {w: json.loads(rig.store.get_bytes(manifest_key(w))) for w in windows}
    objects = rig.objects()

    forced = rig.backfill(*args, "--force")
    assert forced.returncode == 0, forced.stderr
    assert rig.requests(windows) == [2, 2]
    assert rig.objects() == objects
    for window in windows:
        after = json.loads(rig.store.get_bytes(manifest_key(window)))
        assert after["export_id"] != before[window]["export_id"]
        assert [p["key"] for p in after["parts"]] == [p["key"] for p in before[window]["parts"]]
        assert (
            after["rows"]
            == before[window]["rows"]
            == len(expected_messages(SEED, PER_DAY, [window]))
        )
    rows = read_archive(rig.store)
    archived = archived_as_api_records(rows)
    expected = expected_messages(SEED, PER_DAY, windows)
    assert {key: archived[key] for key in expected} == expected
    assert sum(1 for i in rows.column("id").to_pylist() if i in expected) == len(expected)


def test_an_interrupted_backfill_continues_without_requesting_committed_windows_again(
    rig: Rig,
) -> None:
    windows = rig.hours(20, 6)
    args = ("--since", windows[0].start.isoformat(), "--until", windows[-1].end.isoformat())
    process = subprocess.Popen(
        rig.command(*args),
        env=rig.env | {"ARCHIVER_REQUEST_PACING": "1s"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while rig.states(windows).count("committed") < 2:
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, rig.states(windows)
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130, stderr
    assert "interrupted; run the command again to continue" in stderr
    interrupted = rig.states(windows)
    committed = [w for w, state in zip(windows, interrupted, strict=True) if state == "committed"]
    assert 2 <= len(committed) < len(windows)

    again = rig.backfill(*args)
    assert again.returncode == 0, again.stderr
    assert rig.states(windows) == ["committed"] * len(windows)
    counts = dict(zip(windows, rig.requests(windows), strict=True))
    assert all(counts[window] == 1 for window in committed)
    # A request cut off on the wire is given back and may be sent once more; nothing else is.
    assert all(1 <= count <= 2 for count in counts.values())
    assert sum(counts.values()) <= len(windows) + 1
    expected = expected_messages(SEED, PER_DAY, windows)
    archived = archived_as_api_records(read_archive(rig.store))
    assert {key: archived[key] for key in expected} == expected


def test_a_window_ending_in_the_future_is_refused_in_one_line_with_exit_2(rig: Rig) -> None:
    result = rig.backfill(
        "--since", (rig.now - HOUR).isoformat(), "--until", (rig.now + 2 * HOUR).isoformat()
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("chat-archiver: error: the window ")
    assert "ends in the future" in lines[0]
    assert httpx.get(f"{rig.simulator_url}/_sim/state").json()["export_requests_total"] == 0


def test_backfill_exits_1_and_names_the_window_when_one_fails(rig: Rig) -> None:
    windows = rig.hours(50, 2)
    httpx.post(
        f"{rig.simulator_url}/_sim/faults",
        json={"failure_notices": {"count": 1, "error": "export job crashed"}},
    ).raise_for_status()
    result = rig.backfill(
        "--since", windows[0].start.isoformat(), "--until", windows[-1].end.isoformat()
    )
    assert result.returncode == 1, result.stderr
    assert sorted(rig.states(windows)) == ["committed", "failed"]
    failed = next(w for w, s in zip(windows, rig.states(windows), strict=True) if s == "failed")
    assert f"failed: {failed}" in result.stderr
    assert "export job crashed" in result.stderr
    assert result.stdout.strip().endswith("backfill: 1 committed, 1 failed, of 2")
    assert "1 failed (" in _progress(result.stderr)[-1]
    assert rig.requests(windows) == [1, 1]
