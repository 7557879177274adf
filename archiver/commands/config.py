"""`chat-archiver config show`: the effective settings and where each came from."""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from datetime import datetime, timedelta

from archiver.config_sources import DEFAULT, RawSettings
from archiver.settings import Settings, hide_password, setting_names

# Shown as set or not set, never as their value.
SECRET_SETTINGS = ("ARCHIVER_API_KEY", "ARCHIVER_ADMIN_TOKEN")


@dataclass(frozen=True)
class Entry:
    variable: str
    value: str | None
    source: str


def format_value(value: object) -> str | None:
    """A setting's value in the form the settings take it (`1d`, `15m`, ISO instants)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, timedelta):
        seconds = int(value.total_seconds())
        for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
            if seconds and seconds % size == 0:
                return f"{seconds // size}{unit}"
        return f"{seconds}s"
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    return str(value)


def _effective_value(settings: Settings, variable: str) -> object:
    name = variable.removeprefix("ARCHIVER_").lower()
    if name.startswith("s3_"):
        return getattr(settings.s3, name.removeprefix("s3_"), None)
    if name in {f.name for f in fields(Settings)}:
        return getattr(settings, name)
    return None


def effective_settings(settings: Settings, raw: RawSettings) -> list[Entry]:
    """Every setting, its effective value (secrets masked) and its source."""
    entries = []
    for variable in setting_names():
        source = raw.sources.get(variable, DEFAULT)
        if variable in SECRET_SETTINGS:
            is_set = _effective_value(settings, variable) is not None
            if variable == "ARCHIVER_API_KEY" and variable not in raw.sources and is_set:
                key_file_source = raw.sources.get("ARCHIVER_API_KEY_FILE")
                source = f"file named by ARCHIVER_API_KEY_FILE ({key_file_source})"
            entries.append(Entry(variable, "*** (set)" if is_set else None, source))
            continue
        if variable == "ARCHIVER_API_KEY_FILE":
            value: object = raw.values.get(variable)
        else:
            value = _effective_value(settings, variable)
        text = format_value(value)
        if variable == "ARCHIVER_LEDGER_URL" and text:
            text = hide_password(text)
        entries.append(Entry(variable, text, source))
    return entries


def show(settings: Settings, raw: RawSettings, *, as_json: bool) -> int:
    entries = effective_settings(settings, raw)
    if as_json:
        document = {e.variable: {"value": e.value, "source": e.source} for e in entries}
        print(json.dumps(document, indent=2))
        return 0
    width = max(len(e.variable) for e in entries)
    value_width = min(40, max(len(e.value or "(not set)") for e in entries))
    for entry in entries:
        value = entry.value if entry.value is not None else "(not set)"
        print(f"{entry.variable:<{width}}  {value:<{value_width}}  {entry.source}")
    return 0
