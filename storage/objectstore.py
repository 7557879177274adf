"""The object store interface: where the archive lives (S3 or S3-compatible, or a local
directory). Open one with `storage.stores.open_store`.

Every store takes keys relative to its own prefix, so the layout code never sees the
bucket or the root directory.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from storage.errors import TransientError


class StoreError(TransientError):
    """An object store operation failed; the message says what and where, in one line."""


class ObjectNotFound(StoreError):
    """The object does not exist."""


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int


class ObjectStore(Protocol):
    description: str
    """Where the store points, e.g. "s3://bucket/prefix"; never holds secrets."""

    def put_bytes(self, key: str, data: bytes) -> None: ...

    def put_file(self, key: str, path: Path) -> None: ...

    def copy(self, source: str, key: str) -> None:
        """Copies the object at `source` to `key` within the store (server-side where the
        store can), replacing `key` whole. Raises ObjectNotFound when `source` does not exist."""
        ...

    def get_bytes(self, key: str) -> bytes:
        """Raises ObjectNotFound when the key does not exist."""
        ...

    def download_file(self, key: str, path: Path) -> None:
        """Raises ObjectNotFound when the key does not exist."""
        ...

    def size(self, key: str) -> int | None:
        """The object's size in bytes, or None when it does not exist."""
        ...

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        """Objects whose key starts with `prefix`, sorted by key."""
        ...

    def delete(self, key: str) -> None:
        """Deletes the object; a missing object is not an error."""
        ...

    def check_access(self) -> None:
        """Writes, reads back and deletes a probe object; StoreError says which step failed."""
        ...

    def fast_failing(self) -> ObjectStore:
        """The same store for callers that must answer within seconds (callback intake,
        readiness): short timeouts and few retries where the store has them."""
        ...


def check_key(key: str) -> str:
    """Refuses keys that could escape the store's prefix or mean different things per store."""
    parts = key.split("/")
    if (
        not key
        or key.startswith("/")
        or "\\" in key
        or any(part in ("", ".", "..") for part in parts)
    ):
        raise StoreError(f"object key {key!r} is not a plain relative path")
    return key
