"""ARCHIVER_WINDOW changed after archiving (1d, then 12h): the overlap is refused, and
`export --replace` supersedes the old windows; no id is ever twice in the table, either format."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from archiver.settings import load_settings
from archiver.tables import table_source
from scheduler.planner import align_down
from simulator.app import create_app as create_simulator
from storage.layout import Window, manifest_key
from storage.ledger import Ledger
from storage.objectstore import open_store
from storage.schema import STREAM
from tests.harness import (
    archived_as_api_records,
    expected_messages,
    loopback_simulator,
    read_archive,
    running_service,
    service_env,
    wait_for_states,
)
from tests.servers import free_port, serve_in_thread

SEED, PER_DAY = 41, 240
DAY = timedelta(days=1)


@pytest.fixture
def simulator_url() -> Iterator[str]:
    with serve_in_thread(create_simulator(loopback_simulator(SEED, PER_DAY))) as url:
        yield url


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "archiver.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def table_rows(env: dict[str, str]) -> pa.Table:
    if env["ARCHIVER_TABLE_FORMAT"] == "iceberg":
        return table_source(load_settings(env)).load().scan().to_arrow()
    return read_archive(open_store(env["ARCHIVER_STORAGE_URL"]))


@pytest.mark.parametrize("table_format", ["parquet", "iceberg"])
def test_a_new_window_length_is_refused_then_replaces_the_old_windows(
    table_format: str, simulator_url: str, tmp_path: Path
) -> None:
    today = align_down(datetime.now(UTC), DAY)
    days = [Window(today - 2 * DAY, today - DAY), Window(today - DAY, today)]
    env = service_env(
        api_url=simulator_url,
        ledger_url=f"sqlite:///{tmp_path}/ledger.db",
        storage_url=f"file://{tmp_path}/archive",
        port=free_port(),
        ARCHIVER_TABLE_FORMAT=table_format,
        ARCHIVER_START=today.isoformat(),
    )
    period = ("--start", days[0].start.isoformat(), "--end", days[-1].end.isoformat())
    expected = expected_messages(SEED, PER_DAY, days)
    with running_service(env, tmp_path / "serve.log"):
        ledger = Ledger.open(env["ARCHIVER_LEDGER_URL"])
        assert cli(env | {"ARCHIVER_WINDOW": "1d"}, "export", *period).returncode == 0
        wait_for_states(ledger, 2)
        halves = env | {"ARCHIVER_WINDOW": "12h"}
        refused = cli(halves, "export", *period)
        assert refused.returncode == 2
        [line] = refused.stderr.strip().splitlines()
        assert str(days[0]) in line and "export --replace" in line
        replaced = cli(halves, "export", "--replace", *period)
        assert replaced.returncode == 0, replaced.stderr
        records = wait_for_states(ledger, 4, timeout=90)
        if table_format == "parquet":
            # The worker drops a replaced window's manifest and parts right after the commit
            # that covers its time.
            store = open_store(env["ARCHIVER_STORAGE_URL"])
            deadline = time.monotonic() + 30
            while any(store.size(manifest_key(day, STREAM)) is not None for day in days):
                assert time.monotonic() < deadline, "replaced windows were not dropped"
                time.sleep(0.1)
    states = {r.window: r.state for r in records}
    assert [states[day] for day in days] == ["replaced", "replaced"]
    assert sum(state == "committed" for state in states.values()) == 4
    rows = table_rows(env)
    assert rows.num_rows == len(expected)
    assert pc.count_distinct(rows.column("id")).as_py() == len(expected)
    assert archived_as_api_records(rows) == expected
    assert set(rows.column("_window_end").to_pylist()) == {
        day.start + k * timedelta(hours=12) for day in days for k in (1, 2)
    }
    checked = cli(env, "verify")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    ledger.close()
