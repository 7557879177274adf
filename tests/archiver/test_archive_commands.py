"""`verify`, `ddl` and `check` against a real archive, store and upstream."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from simulator.app import create_app
from simulator.config import SimulatorConfig
from storage.commit import write_window
from storage.layout import Window
from storage.ledger import Ledger
from storage.stores import open_store
from tests.servers import serve_in_thread

WINDOW = Window(datetime(2026, 5, 1, 22, tzinfo=UTC), datetime(2026, 5, 2, 2, tzinfo=UTC))
KEY = "check-key"


def _messages(count: int) -> pa.RecordBatch:
    return pa.RecordBatch.from_pylist(
        [
            {
                "id": f"00000000-0000-4000-8000-{index:012d}",
                "chatId": "11111111-1111-4111-8111-111111111111",
                "content": f"message {index}",
                "role": "user",
                "createdAt": f"2026-05-01T2{2 + index % 4 // 2}:30:00Z"
                if index % 2
                else f"2026-05-02T0{index % 2}:15:00.5+00:00",
            }
            for index in range(count)
        ]
    )


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    root = tmp_path / "archive"
    store = open_store(f"file://{root}")
    write_window(store, WINDOW, "e" * 32, [_messages(40)], ingested_at=datetime.now(UTC))
    return root


def _cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "archiver.cli", *args],
        env={"PATH": "", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_verify_passes_on_an_intact_archive_and_names_every_problem(
    archive: Path, tmp_path: Path
) -> None:
    env = {
        "ARCHIVER_STORAGE_URL": f"file://{archive}",
        "ARCHIVER_LEDGER_URL": f"sqlite:///{tmp_path}/ledger.db",
    }
    assert _cli("verify", **env).returncode == 0
    parts = sorted(archive.glob("chat_messages/*/*.parquet"))
    assert len(parts) == 2
    parts[0].unlink()
    parts[1].write_bytes(parts[1].read_bytes()[:100])
    stray = archive / "chat_messages" / "date=2026-05-01" / "part-x.parquet"
    stray.write_bytes(b"PAR1")
    result = _cli("verify", **env)
    assert result.returncode == 1
    kinds = {line.split()[0] for line in result.stdout.splitlines() if line.strip()}
    assert {"missing", "size", "unlisted"} <= kinds


def test_the_duckdb_ddl_reads_back_every_row(archive: Path) -> None:
    result = _cli("ddl", "--dialect", "duckdb", ARCHIVER_STORAGE_URL=f"file://{archive}")
    assert result.returncode == 0, result.stderr
    connection = duckdb.connect()
    connection.execute(result.stdout)
    assert connection.execute("SELECT count(*) FROM chat_messages").fetchone() == (40,)


@pytest.mark.parametrize("dialect", ["athena", "bigquery", "snowflake", "trino"])
def test_every_dialect_renders_for_an_s3_archive(dialect: str) -> None:
    result = _cli("ddl", "--dialect", dialect, ARCHIVER_STORAGE_URL="s3://lake/chat")
    assert result.returncode == 0, result.stderr
    assert "chat_messages" in result.stdout


@pytest.fixture
def upstream() -> Iterator[str]:
    with serve_in_thread(create_app(SimulatorConfig(api_key=KEY))) as url:
        yield url


def test_check_reports_each_dependency(tmp_path: Path, upstream: str) -> None:
    env = {
        "ARCHIVER_API_URL": upstream,
        "ARCHIVER_API_KEY": KEY,
        "ARCHIVER_PUBLIC_URL": "https://archiver.example.com",
        "ARCHIVER_STORAGE_URL": f"file://{tmp_path}/archive",
        "ARCHIVER_LEDGER_URL": f"sqlite:///{tmp_path}/ledger.db",
    }
    good = _cli("check", **env)
    assert good.returncode == 0, good.stdout
    assert good.stdout.count("ok ") == 4


def test_check_names_what_fails_and_never_prints_the_key(
    tmp_path: Path, upstream: str, s3_endpoint: str
) -> None:
    env = {
        "ARCHIVER_API_URL": upstream,
        "ARCHIVER_API_KEY": "a-revoked-secret-key",
        "ARCHIVER_PUBLIC_URL": "https://archiver.example.com",
        "ARCHIVER_STORAGE_URL": "s3://no-such-bucket/prefix",
        "ARCHIVER_S3_ENDPOINT_URL": s3_endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "ARCHIVER_LEDGER_URL": f"sqlite:///{tmp_path}/ledger.db",
    }
    result = _cli("check", **env)
    assert result.returncode == 1
    failures = [line for line in result.stdout.splitlines() if line.startswith("FAIL")]
    assert len(failures) == 2
    assert "no-such-bucket" in failures[0]
    assert "API key" in failures[1]
    assert "a-revoked-secret-key" not in result.stdout + result.stderr


def test_ddl_with_a_hostile_table_name_exits_2_with_one_line(archive: Path) -> None:
    result = _cli(
        "ddl", "--dialect", "duckdb", "--table", "x; drop", ARCHIVER_STORAGE_URL=f"file://{archive}"
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith("chat-archiver: error: table name 'x; drop'")


def test_status_into_a_closed_pipe_exits_quietly(archive: Path, tmp_path: Path) -> None:
    env = {
        "PATH": "",
        "ARCHIVER_STORAGE_URL": f"file://{archive}",
        "ARCHIVER_LEDGER_URL": f"sqlite:///{tmp_path}/l.db",
    }
    Ledger.open(env["ARCHIVER_LEDGER_URL"]).close()  # status reads a ledger; it never makes one
    status = subprocess.Popen(
        [sys.executable, "-m", "archiver.cli", "status"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert status.stdout is not None and status.stderr is not None
    status.stdout.close()  # the reader is gone before the first line, as with `| head -0`
    stderr = status.stderr.read().decode()
    assert status.wait(timeout=60) == 0, stderr
    assert "Traceback" not in stderr and "BrokenPipe" not in stderr
