"""`chat-archiver verify` proves the table: a duplicated id, a gap, a snapshot that disagrees
with the ledger, and (`--source`) messages changed or deleted on the platform."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pyarrow as pa
import pytest

from simulator.app import create_app as create_simulator
from simulator.corpus import MessageCorpus
from storage.commit import write_window
from storage.iceberg.catalog import IcebergConfig, TableSource
from storage.iceberg.commit import IcebergTarget
from storage.layout import Window
from storage.ledger import Ledger
from storage.objectstore import open_store
from tests.harness import API_KEY, loopback_simulator
from tests.ledger_steps import commit_in_ledger
from tests.servers import serve_in_thread
from tests.storage.messages import message

DAY = timedelta(days=1)
START = datetime(2026, 3, 1, tzinfo=UTC)
INGESTED = datetime(2026, 3, 5, tzinfo=UTC)


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "archiver.cli", *args],
        env={"PATH": "", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def kinds(result: subprocess.CompletedProcess[str]) -> set[str]:
    return {line.split()[0] for line in result.stdout.splitlines()[:-1] if line.strip()}


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {
        "ARCHIVER_STORAGE_URL": f"file://{tmp_path}/archive",
        "ARCHIVER_LEDGER_URL": f"sqlite:///{tmp_path}/ledger.db",
    }


def test_verify_finds_an_id_in_two_windows_and_a_gap(env: dict[str, str]) -> None:
    store = open_store(env["ARCHIVER_STORAGE_URL"])
    first, third = Window(START, START + DAY), Window(START + 2 * DAY, START + 3 * DAY)
    moved = message(1, START + 2 * DAY + timedelta(hours=1))  # createdAt changed upstream
    with Ledger.open(env["ARCHIVER_LEDGER_URL"]) as ledger:
        for window, rows in ((first, [message(1, START), message(2, START)]), (third, [moved])):
            export_id = commit_in_ledger(ledger, window, len(rows))
            write_window(
                store, window, export_id, [pa.RecordBatch.from_pylist(rows)], ingested_at=INGESTED
            )
    result = cli(env, "verify")
    assert result.returncode == 1, result.stdout + result.stderr
    assert kinds(result) == {"duplicate", "gap"}
    [duplicate] = [line for line in result.stdout.splitlines() if line.startswith("duplicate")]
    assert str(moved["id"]) in duplicate and "2 times" in duplicate
    [gap] = [line for line in result.stdout.splitlines() if line.startswith("gap")]
    assert "2026-03-02T00:00:00+00:00..2026-03-03T00:00:00+00:00" in gap


def test_verify_passes_a_whole_iceberg_table_and_catches_one_the_ledger_disagrees_with(
    env: dict[str, str],
) -> None:
    env = env | {"ARCHIVER_TABLE_FORMAT": "iceberg"}
    store = open_store(env["ARCHIVER_STORAGE_URL"])
    tables = TableSource(
        IcebergConfig(
            storage_url=env["ARCHIVER_STORAGE_URL"], ledger_url=env["ARCHIVER_LEDGER_URL"]
        )
    )
    target = IcebergTarget(store, tables)
    windows = [Window(START + n * DAY, START + (n + 1) * DAY) for n in range(2)]
    with Ledger.open(env["ARCHIVER_LEDGER_URL"]) as ledger:
        for number, window in enumerate(windows):
            rows = [message(10 * number + n, window.start + timedelta(hours=n)) for n in range(3)]
            export_id = commit_in_ledger(ledger, window, len(rows))
            target.commit_window(
                window, export_id, [pa.RecordBatch.from_pylist(rows)], ingested_at=INGESTED
            )
    result = cli(env, "verify")
    assert result.returncode == 0, result.stdout + result.stderr
    # A commit the ledger never recorded (as a second writer of the table would leave).
    stray = Window(START + 2 * DAY, START + 3 * DAY)
    target.commit_window(
        stray, "x", [pa.RecordBatch.from_pylist([message(99, stray.start)])], ingested_at=INGESTED
    )
    result = cli(env, "verify")
    assert result.returncode == 1
    assert kinds(result) == {"snapshot"}
    assert "a window the ledger never committed" in result.stdout


SEED, PER_DAY = 31, 240


@pytest.fixture
def simulator_url() -> Iterator[str]:
    config = loopback_simulator(SEED, PER_DAY, drop_callbacks=True)
    with serve_in_thread(create_simulator(config)) as url:
        yield url


def test_verify_source_reports_messages_changed_deleted_and_missing(
    env: dict[str, str], simulator_url: str
) -> None:
    window = Window(START, START + DAY)
    # The platform has exported this day (its callback went nowhere); the archive holds it.
    httpx.post(
        f"{simulator_url}/api/v1/chat-messages/export",
        headers={"authorization": API_KEY},
        json={
            "rangeStart": window.start.isoformat(),
            "rangeEnd": window.end.isoformat(),
            "callbackUrl": "http://127.0.0.1:9/callback",
        },
    ).raise_for_status()
    messages = list(MessageCorpus(SEED, PER_DAY).between(window.start, window.end))
    chat = messages[0]["chatId"]
    in_chat = [m for m in messages if m["chatId"] == chat]
    assert len(in_chat) >= 3
    store = open_store(env["ARCHIVER_STORAGE_URL"])
    with Ledger.open(env["ARCHIVER_LEDGER_URL"]) as ledger:
        export_id = commit_in_ledger(ledger, window, len(messages))
    archived = [m for m in messages if m["id"] != in_chat[2]["id"]]
    write_window(
        store, window, export_id, [pa.RecordBatch.from_pylist(archived)], ingested_at=INGESTED
    )
    env = env | {"ARCHIVER_API_URL": simulator_url, "ARCHIVER_API_KEY": API_KEY}
    clean = cli(env, "verify", "--source", "--sample", "1000")
    assert kinds(clean) <= {"missing", "verify"}, clean.stdout
    httpx.post(
        f"{simulator_url}/_sim/faults",
        json={
            "edited_messages": {in_chat[0]["id"]: {"content": "edited after archiving"}},
            "deleted_messages": [in_chat[1]["id"]],
        },
    ).raise_for_status()
    result = cli(env, "verify", "--source", "--sample", "1000")
    assert result.returncode == 1, result.stdout + result.stderr
    lines = {line.split()[0]: line for line in result.stdout.splitlines() if line.strip()}
    assert in_chat[0]["id"] in lines["changed"] and "content" in lines["changed"]
    assert in_chat[1]["id"] in lines["extra"]
    assert in_chat[2]["id"] in lines["missing"]
    assert API_KEY not in result.stdout + result.stderr
