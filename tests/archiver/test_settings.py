from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from archiver.settings import SettingsError, load_settings


def test_defaults_match_the_contract() -> None:
    settings = load_settings({})
    assert settings.host == "127.0.0.1"
    assert settings.port == 8080
    assert settings.storage_url == "file://./archive"
    assert settings.ledger_url == "sqlite:///./archiver.db"
    assert settings.schedule == "0 2 * * *"
    assert settings.window == timedelta(days=1)
    assert settings.settle_delay == timedelta(minutes=15)
    assert settings.callback_timeout == timedelta(hours=6)
    assert settings.max_attempts == 5
    assert settings.language == "enUs"
    assert settings.max_callback_bytes == 67108864
    assert settings.max_download_bytes == 10737418240
    assert settings.download_allow_private is False


def test_values_are_parsed_from_the_environment() -> None:
    settings = load_settings(
        {
            "ARCHIVER_WINDOW": "15m",
            "ARCHIVER_START": "2026-01-01T00:00:00+02:00",
            "ARCHIVER_S3_ENDPOINT_URL": "http://127.0.0.1:9000",
            "ARCHIVER_LEDGER_URL": "postgresql://postgres@db/archiver",
            "ARCHIVER_DOWNLOAD_ALLOW_PRIVATE": "1",
        }
    )
    assert settings.window == timedelta(minutes=15)
    assert settings.start == datetime(2025, 12, 31, 22, tzinfo=UTC)
    assert settings.s3.endpoint_url == "http://127.0.0.1:9000"
    assert settings.ledger_url.startswith("postgresql+psycopg://")
    assert settings.download_allow_private is True


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("ARCHIVER_WINDOW", "daily", "ARCHIVER_WINDOW: "),
        ("ARCHIVER_WINDOW", "400d", "at most 183d"),
        ("ARCHIVER_PORT", "http", "ARCHIVER_PORT: expected a whole number"),
        ("ARCHIVER_SCHEDULE", "every night", "ARCHIVER_SCHEDULE: not a cron expression"),
        ("ARCHIVER_LANGUAGE", "fr", "ARCHIVER_LANGUAGE: expected one of enUs, esEs, ptBr"),
        ("ARCHIVER_STORAGE_URL", "gs://bucket", "ARCHIVER_STORAGE_URL: expected s3://"),
        ("ARCHIVER_START", "yesterday", "ARCHIVER_START: expected an ISO-8601"),
        ("ARCHIVER_MAX_ATTEMPTS", "0", "ARCHIVER_MAX_ATTEMPTS: must be at least 1"),
        ("ARCHIVER_WINDOW", "13h", "ARCHIVER_WINDOW: '13h' does not divide a day"),
        ("ARCHIVER_WINDOW", "90s", "ARCHIVER_WINDOW: '90s' does not divide a day"),
        ("ARCHIVER_WINDOW", "36h", "is not a whole number of days"),
    ],
)
def test_a_malformed_value_names_its_variable(variable: str, value: str, expected: str) -> None:
    with pytest.raises(SettingsError) as raised:
        load_settings({variable: value})
    assert expected in str(raised.value)


def test_http_public_url_needs_the_insecure_switch() -> None:
    with pytest.raises(SettingsError, match="ARCHIVER_PUBLIC_URL: must be an https URL"):
        load_settings({"ARCHIVER_PUBLIC_URL": "http://example.test"})
    settings = load_settings(
        {"ARCHIVER_PUBLIC_URL": "http://example.test", "ARCHIVER_ALLOW_INSECURE_CALLBACKS": "1"}
    )
    assert settings.public_url == "http://example.test"


def test_the_key_is_read_from_a_file_and_never_shown(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text("s3cr3t-key\n")
    settings = load_settings({"ARCHIVER_API_KEY_FILE": str(key_file)})
    assert settings.api_key == "s3cr3t-key"
    assert "s3cr3t" not in repr(settings)


def test_a_config_file_is_overridden_by_the_environment(tmp_path: Path) -> None:
    config = tmp_path / "archiver.toml"
    config.write_text('window = "1h"\nARCHIVER_PORT = 9000\nlanguage = "ptBr"\n')
    settings = load_settings({"ARCHIVER_LANGUAGE": "esEs"}, config)
    assert settings.window == timedelta(hours=1)
    assert settings.port == 9000
    assert settings.language == "esEs"


def test_bad_settings_stop_the_command_with_one_line_and_exit_2(tmp_path: Path) -> None:
    env = {"ARCHIVER_WINDOW": "soon", "ARCHIVER_API_KEY": "very-secret-key", "PATH": ""}
    result = subprocess.run(
        [sys.executable, "-m", "archiver.cli", "status"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("chat-archiver: error: ARCHIVER_WINDOW:")
    assert "very-secret-key" not in result.stderr + result.stdout


def test_serve_without_an_api_url_names_the_missing_variable(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "archiver.cli", "serve"],
        env={"PATH": ""},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "chat-archiver: error: ARCHIVER_API_URL: is required for this command and is not set"
    )


def test_serve_with_a_missing_bucket_stops_with_one_line(tmp_path: Path, s3_endpoint: str) -> None:
    env = {
        "PATH": "",
        "ARCHIVER_API_URL": "http://127.0.0.1:9",
        "ARCHIVER_API_KEY": "key",
        "ARCHIVER_PUBLIC_URL": "https://archiver.example.com",
        "ARCHIVER_STORAGE_URL": "s3://missing-bucket/prefix",
        "ARCHIVER_S3_ENDPOINT_URL": s3_endpoint,
        "ARCHIVER_LEDGER_URL": f"sqlite:///{tmp_path}/ledger.db",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    result = subprocess.run(
        [sys.executable, "-m", "archiver.cli", "serve"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "missing-bucket" in lines[0], result.stderr


@pytest.mark.parametrize("window", ["15m", "1h", "6h", "12h", "1d", "7d", "2880m"])
def test_windows_that_tile_days_are_accepted(window: str) -> None:
    assert load_settings({"ARCHIVER_WINDOW": window}).window.total_seconds() > 0


def test_unknown_variables_and_keys_name_the_nearest_setting(tmp_path: Path) -> None:
    from archiver.settings import load

    config = tmp_path / "archiver.toml"
    config.write_text('ledger_ulr = "sqlite:///x.db"\nwindow = "1h"\n')
    loaded = load({"ARCHIVER_STORAGE_ULR": "s3://x", "ARCHIVER_TEST_POSTGRES_URL": "x"}, config)
    assert loaded.settings.storage_url == "file://./archive"
    assert loaded.warnings == [
        f"config file {config}: unknown key 'ledger_ulr'; did you mean 'ledger_url'?",
        "ARCHIVER_STORAGE_ULR is not a setting; did you mean ARCHIVER_STORAGE_URL?",
    ]
    with pytest.raises(SettingsError, match="--strict: ARCHIVER_STORAGE_ULR is not a setting"):
        load({"ARCHIVER_STORAGE_ULR": "s3://x"}, strict=True)


def test_backfill_stops_by_default_where_the_settle_delay_allows() -> None:
    from archiver.commands.requests import default_until

    settings = load_settings({"ARCHIVER_WINDOW": "1h", "ARCHIVER_SETTLE_DELAY": "15m"})
    now = datetime(2026, 3, 1, 10, 10, tzinfo=UTC)
    assert default_until(settings, now) == datetime(2026, 3, 1, 9, tzinfo=UTC)
    assert default_until(settings, now + timedelta(minutes=10)) == datetime(
        2026, 3, 1, 10, tzinfo=UTC
    )
