from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pyarrow.dataset as ds


def test_demo_archives_a_day_with_no_configuration(tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    result = subprocess.run(
        [sys.executable, "-m", "archiver.cli", "demo", "--days", "1", "--archive", str(archive)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "1 window(s) committed" in result.stdout
    assert "Query them" in result.stdout
    table = ds.dataset(archive / "chat_messages", partitioning="hive").to_table()
    assert table.num_rows > 0
    assert list((archive / "_manifests" / "chat_messages").glob("*.json"))
    # The query hint runs as printed, with nothing but what chat-archiver installs.
    hint = result.stdout.split("Query them")[1].splitlines()[1].strip()
    query = subprocess.run(
        hint, shell=True, cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert query.returncode == 0, query.stderr
    [line] = query.stdout.splitlines()
    assert line.endswith(f" {table.num_rows} messages")
