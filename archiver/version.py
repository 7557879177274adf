"""The installed package's version, read from its metadata so it is written in one place."""

from __future__ import annotations

from importlib import metadata


def version() -> str:
    try:
        return metadata.version("chat-archiver")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"
