"""Settings: environment variables, or a TOML file passed with `--config`.

Every value is parsed and checked once, at start. A wrong value stops the process with one line
that names the variable; secrets are never part of that line.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

from apscheduler.triggers.cron import CronTrigger

from archiver.config_sources import ConfigFileError, RawSettings, read_raw, unknown_settings
from scheduler.planner import MAX_REQUEST_SPAN, parse_duration
from storage.errors import UserError
from storage.objectstore import StoreError
from storage.stores import S3Options

LANGUAGES = ("enUs", "esEs", "ptBr")
Parser = Callable[[str], object]
PREFIX = "ARCHIVER_"


class SettingsError(UserError):
    """A setting is missing or malformed; the message names the variable."""

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"{variable}: {problem}")
        self.variable = variable


@dataclass(frozen=True)
class Settings:
    api_url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    public_url: str | None = None
    allow_insecure_callbacks: bool = False
    host: str = "127.0.0.1"
    port: int = 8080
    storage_url: str = "file://./archive"
    s3: S3Options = field(default_factory=S3Options)
    ledger_url: str = "sqlite:///./archiver.db"
    schedule: str = "0 2 * * *"
    window: timedelta = timedelta(days=1)
    start: datetime | None = None
    settle_delay: timedelta = timedelta(minutes=15)
    callback_timeout: timedelta = timedelta(hours=6)
    max_attempts: int = 5
    language: str = "enUs"
    max_callback_bytes: int = 64 * 1024 * 1024
    max_download_bytes: int = 10 * 1024**3
    download_allow_private: bool = False
    part_bytes: int = 256 * 1024 * 1024
    row_group_bytes: int = 64 * 1024 * 1024
    requests_per_tick: int = 20
    request_pacing: timedelta = timedelta(seconds=1)
    request_interval: timedelta = timedelta(seconds=30)
    worker_poll: timedelta = timedelta(seconds=5)
    lease: timedelta = timedelta(minutes=2)
    body_timeout: timedelta = timedelta(seconds=60)
    raw_retention: timedelta | None = None
    log_level: str = "INFO"
    admin_token: str | None = field(default=None, repr=False)
    table_format: str = "parquet"
    iceberg_catalog: str = "sql"
    iceberg_catalog_uri: str | None = field(default=None, repr=False)
    iceberg_table: str = "chat_archive.chat_messages"
    iceberg_snapshot_retention: timedelta = timedelta(days=7)
    # A forced re-export whose rows fall by more than this fraction is not committed.
    shrink_guard: float = 0.5

    def require_upstream(self) -> None:
        """`serve`, `export` and `backfill` talk to the upstream; other commands do not."""
        for name in ("api_url", "api_key", "public_url"):
            if getattr(self, name) is None:
                variable = "ARCHIVER_API_KEY" if name == "api_key" else _variable(name)
                raise SettingsError(variable, "is required for this command and is not set")

    @property
    def secrets(self) -> list[str]:
        return [secret for secret in (self.api_key, self.admin_token) if secret]


def _variable(name: str) -> str:
    return PREFIX + name.upper()


def _parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"expected 1/0, true/false, yes/no or on/off, got {text!r}")


def _parse_int(text: str, minimum: int = 0) -> int:
    try:
        value = int(text.strip().replace("_", ""))
    except ValueError:
        raise ValueError(f"expected a whole number, got {text!r}") from None
    if value < minimum:
        raise ValueError(f"must be at least {minimum}, got {value}")
    return value


def _parse_positive_duration(text: str) -> timedelta:
    value = parse_duration(text)
    if value <= timedelta(0):
        raise ValueError(f"must be longer than zero, got {text!r}")
    return value


def parse_instant(text: str) -> datetime:
    """ISO-8601 date or date-time; naive values are UTC."""
    candidate = text.strip()
    if candidate.endswith("Z"):
        candidate = candidate[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(candidate)
    except ValueError:
        raise ValueError(
            f"expected an ISO-8601 date or date-time like 2026-01-31 or "
            f"2026-01-31T00:00:00Z, got {text!r}"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _parse_http_url(text: str) -> str:
    parts = urlsplit(text.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"expected an http(s) URL, got {text!r}")
    return text.strip().rstrip("/")


def _parse_storage_url(text: str) -> str:
    parts = urlsplit(text.strip())
    if parts.scheme == "s3" and parts.netloc:
        return text.strip().rstrip("/")
    if parts.scheme == "file" and (parts.netloc in ("", ".") or parts.path):
        return text.strip()
    raise ValueError(f"expected s3://bucket/prefix or file:///path, got {text!r}")


def _parse_ledger_url(text: str) -> str:
    url = text.strip()
    if url.startswith(("sqlite:///", "postgresql+psycopg://", "postgresql://")):
        return url.replace("postgresql://", "postgresql+psycopg://", 1)
    raise ValueError(
        f"expected sqlite:///path or postgresql+psycopg://..., got {hide_password(url)!r}"
    )


def hide_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@", 1)
    return url


def _parse_cron(text: str) -> str:
    try:
        CronTrigger.from_crontab(text.strip(), timezone=UTC)
    except ValueError as error:
        raise ValueError(f"not a cron expression ({error}): {text!r}") from None
    return text.strip()


def _parse_window(text: str) -> timedelta:
    """Windows align to UTC multiples of their length, so the length must tile a day."""
    value = _parse_positive_duration(text)
    if value > MAX_REQUEST_SPAN:
        raise ValueError("must be at most 183d: the upstream exports at most 6 months at once")
    seconds = int(value.total_seconds())
    day = 86400
    whole_minutes = seconds % 60 == 0
    if not ((whole_minutes and day % seconds == 0) or seconds % day == 0):
        raise ValueError(
            f"{text.strip()!r} does not divide a day into whole minutes and is not a whole "
            "number of days, so windows would not align to UTC days; use a length such as "
            "15m, 30m, 1h, 2h, 3h, 4h, 6h, 8h, 12h, 1d or 7d"
        )
    return value


def _parse_language(text: str) -> str:
    if text.strip() not in LANGUAGES:
        raise ValueError(f"expected one of {', '.join(LANGUAGES)}, got {text!r}")
    return text.strip()


def _parse_choice(choices: tuple[str, ...]) -> Parser:
    def parse(text: str) -> str:
        if text.strip() not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}, got {text!r}")
        return text.strip()

    return parse


def _parse_table_name(text: str) -> str:
    name = text.strip()
    parts = name.split(".")
    if len(parts) < 2 or not all(part.replace("_", "").isalnum() for part in parts):
        raise ValueError(f"expected namespace.table (letters, digits, _), got {text!r}")
    return name


def _parse_log_level(text: str) -> str:
    level = text.strip().upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ValueError(f"expected DEBUG, INFO, WARNING or ERROR, got {text!r}")
    return level


def _parse_fraction(text: str) -> float:
    """`50%` or `0.5`: a fraction from 0 to 1 (1, or 100%, turns the guard off)."""
    value = text.strip()
    try:
        fraction = float(value[:-1]) / 100 if value.endswith("%") else float(value)
    except ValueError:
        raise ValueError(
            f"expected a percentage like 50% or a fraction like 0.5, got {text!r}"
        ) from None
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"must be between 0% and 100%, got {text!r}")
    return fraction


_PARSERS: dict[str, Parser] = {
    "api_url": _parse_http_url,
    "public_url": _parse_http_url,
    "allow_insecure_callbacks": _parse_bool,
    "host": str.strip,
    "port": lambda text: _parse_int(text, minimum=1),
    "storage_url": _parse_storage_url,
    "ledger_url": _parse_ledger_url,
    "schedule": _parse_cron,
    "window": _parse_window,
    "start": parse_instant,
    "settle_delay": parse_duration,
    "callback_timeout": _parse_positive_duration,
    "max_attempts": lambda text: _parse_int(text, minimum=1),
    "language": _parse_language,
    "max_callback_bytes": lambda text: _parse_int(text, minimum=1),
    "max_download_bytes": lambda text: _parse_int(text, minimum=1),
    "download_allow_private": _parse_bool,
    "part_bytes": lambda text: _parse_int(text, minimum=1024),
    "row_group_bytes": lambda text: _parse_int(text, minimum=1024),
    "requests_per_tick": lambda text: _parse_int(text, minimum=1),
    "request_pacing": parse_duration,
    "request_interval": _parse_positive_duration,
    "worker_poll": _parse_positive_duration,
    "lease": _parse_positive_duration,
    "body_timeout": _parse_positive_duration,
    "raw_retention": _parse_positive_duration,
    "log_level": _parse_log_level,
    "admin_token": str.strip,
    "table_format": _parse_choice(("parquet", "iceberg")),
    "iceberg_catalog": _parse_choice(("sql", "rest", "glue")),
    "iceberg_catalog_uri": str.strip,
    "iceberg_table": _parse_table_name,
    "iceberg_snapshot_retention": _parse_positive_duration,
    "shrink_guard": lambda text: _parse_fraction(text),
}

_S3_PARSERS: dict[str, Parser] = {
    "s3_endpoint_url": _parse_http_url,
    "s3_addressing_style": _parse_choice(("auto", "path", "virtual")),
    "s3_sse": _parse_choice(("AES256", "aws:kms")),
    "s3_sse_kms_key_id": str.strip,
    "s3_checksums": _parse_choice(("when_supported", "when_required")),
    "s3_multipart_threshold": lambda text: _parse_int(text, minimum=5 * 1024 * 1024),
    "s3_retries_mode": _parse_choice(("standard", "adaptive", "legacy")),
}


def _read_api_key(raw: Mapping[str, str]) -> str | None:
    if raw.get("ARCHIVER_API_KEY"):
        return raw["ARCHIVER_API_KEY"].strip()
    key_file = raw.get("ARCHIVER_API_KEY_FILE")
    if not key_file:
        return None
    try:
        key = Path(key_file).read_text(encoding="utf-8").strip()
    except OSError as error:
        raise SettingsError(
            "ARCHIVER_API_KEY_FILE", f"cannot read {key_file!r}: {error.strerror}"
        ) from None
    if not key:
        raise SettingsError("ARCHIVER_API_KEY_FILE", f"{key_file!r} is empty")
    return key


def _parse_values(raw: Mapping[str, str], parsers: Mapping[str, Parser]) -> dict[str, object]:
    """Each set variable through its parser; the first bad one stops with its name."""
    values: dict[str, object] = {}
    for name, parser in parsers.items():
        text = raw.get(_variable(name))
        if text is None or text.strip() == "":
            continue
        try:
            values[name] = parser(text)
        except ValueError as error:
            raise SettingsError(_variable(name), str(error)) from None
    return values


@dataclass(frozen=True)
class LoadedSettings:
    settings: Settings
    raw: RawSettings
    warnings: list[str]


def load(
    environ: Mapping[str, str] | None = None,
    config_file: Path | None = None,
    *,
    strict: bool = False,
) -> LoadedSettings:
    """Settings from a config file (if any), overridden by the environment.

    Names no setting reads are warnings naming the nearest known setting; with `strict`, the
    first of them stops the start like a malformed value does.
    """
    try:
        raw = read_raw(os.environ if environ is None else environ, config_file)
    except ConfigFileError as error:
        raise SettingsError("--config", str(error)) from None
    warnings = unknown_settings(raw, setting_names())
    if strict and warnings:
        raise SettingsError("--strict", warnings[0])

    values = _parse_values(raw.values, _PARSERS)
    values["api_key"] = _read_api_key(raw.values)
    s3_values = {
        name.removeprefix("s3_"): value
        for name, value in _parse_values(raw.values, _S3_PARSERS).items()
    }
    try:
        values["s3"] = S3Options(**s3_values)  # type: ignore[arg-type]
    except StoreError as error:
        raise SettingsError("ARCHIVER_S3_*", str(error)) from None

    settings = Settings(**values)  # type: ignore[arg-type]
    _check_callback_scheme(settings)
    return LoadedSettings(settings, raw, warnings)


def load_settings(
    environ: Mapping[str, str] | None = None,
    config_file: Path | None = None,
    *,
    strict: bool = False,
) -> Settings:
    return load(environ, config_file, strict=strict).settings


def _check_callback_scheme(settings: Settings) -> None:
    if settings.public_url is None or settings.allow_insecure_callbacks:
        return
    if not settings.public_url.startswith("https://"):
        raise SettingsError(
            "ARCHIVER_PUBLIC_URL",
            "must be an https URL (the upstream only calls back over https); "
            "set ARCHIVER_ALLOW_INSECURE_CALLBACKS=1 only for tests and demos",
        )


def setting_names() -> list[str]:
    """Every variable the service reads, for docs, `check` and `config show`."""
    names = [_variable(f.name) for f in fields(Settings) if f.name not in ("s3",)]
    names += [_variable(name) for name in _S3_PARSERS]
    names += ["ARCHIVER_API_KEY_FILE", "ARCHIVER_ALLOW_INSECURE_CALLBACKS"]
    return sorted(set(names))
