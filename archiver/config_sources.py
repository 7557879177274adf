"""Where each setting came from, and the names nobody reads.

A typo such as `ARCHIVER_STORAGE_ULR` would otherwise be ignored silently and the data would go
to the default place; these helpers name the nearest known setting instead. Pure apart from
reading the config file.
"""

from __future__ import annotations

import difflib
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

PREFIX = "ARCHIVER_"
ENVIRONMENT = "environment"
DEFAULT = "default"
# Variables of the test suite, read by the tests and never by the service.
_NOT_SETTINGS_PREFIXES = ("ARCHIVER_TEST_",)


class ConfigFileError(Exception):
    """The --config file is missing or is not valid TOML."""


@dataclass(frozen=True)
class RawSettings:
    """Setting texts by variable name, and where each came from."""

    values: dict[str, str] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    # variable -> the key as written in the config file, for messages about that file
    file_keys: dict[str, str] = field(default_factory=dict)


def read_config_file(path: Path) -> dict[str, tuple[str, str]]:
    """A TOML file of `name = value` pairs: variable -> (text, key as written)."""
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigFileError(f"file {str(path)!r} does not exist") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigFileError(f"{path} is not valid TOML: {error}") from None
    except OSError as error:
        raise ConfigFileError(f"cannot read {str(path)!r}: {error.strerror}") from None
    values: dict[str, tuple[str, str]] = {}
    for key, value in document.items():
        name = key.upper() if key.upper().startswith(PREFIX) else PREFIX + key.upper()
        text = str(value).lower() if isinstance(value, bool) else str(value)
        values[name] = (text, key)
    return values


def read_raw(environ: Mapping[str, str], config_file: Path | None) -> RawSettings:
    """The config file first, the environment over it (the environment wins)."""
    raw = RawSettings()
    if config_file is not None:
        for name, (text, key) in read_config_file(config_file).items():
            raw.values[name] = text
            raw.sources[name] = f"config file {config_file}"
            raw.file_keys[name] = key
    for name, text in environ.items():
        if name.startswith(PREFIX):
            raw.values[name] = text
            raw.sources[name] = ENVIRONMENT
            raw.file_keys.pop(name, None)
    return raw


def unknown_settings(raw: RawSettings, known: Iterable[str]) -> list[str]:
    """One message per name that no setting reads, with the nearest known one."""
    known = sorted(known)
    messages = []
    for name in sorted(raw.values):
        if name in known or name.startswith(_NOT_SETTINGS_PREFIXES):
            continue
        nearest = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
        hint = f"; did you mean {nearest[0]}?" if nearest else ""
        if name in raw.file_keys:
            key = raw.file_keys[name]
            nearest_key = nearest[0].removeprefix(PREFIX).lower() if nearest else ""
            hint = f"; did you mean {nearest_key!r}?" if nearest else ""
            messages.append(f"{raw.sources[name]}: unknown key {key!r}{hint}")
        else:
            messages.append(f"{name} is not a setting{hint}")
    return messages
