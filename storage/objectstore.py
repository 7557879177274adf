"""Object stores: where the archive lives (S3 or S3-compatible, or a local directory).

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


@dataclass(frozen=True)
class S3Options:
    endpoint_url: str | None = None
    addressing_style: str = "auto"  # auto|path|virtual
    sse: str | None = None  # None|"AES256"|"aws:kms"
    sse_kms_key_id: str | None = None
    # "when_required" for S3-compatible stores that reject the newer default checksum headers.
    checksums: str = "when_supported"
    multipart_threshold: int = 64 * 1024 * 1024
    retries_mode: str = "standard"  # standard|adaptive
    max_attempts: int = 8
    # Seconds; each bounds one socket wait (connect, or one read/write), not a whole transfer.
    connect_timeout: float = 10
    read_timeout: float = 120

    def __post_init__(self) -> None:
        choices = {
            "addressing_style": ("auto", "path", "virtual"),
            "checksums": ("when_supported", "when_required"),
            "retries_mode": ("standard", "adaptive", "legacy"),
        }
        for name, allowed in choices.items():
            value = getattr(self, name)
            if value not in allowed:
                raise StoreError(f"S3 option {name}={value!r} is not one of {', '.join(allowed)}")
        if self.sse not in (None, "AES256", "aws:kms"):
            raise StoreError(f"S3 option sse={self.sse!r} is not one of AES256, aws:kms")
        if self.sse_kms_key_id and self.sse != "aws:kms":
            raise StoreError("S3 option sse_kms_key_id needs sse='aws:kms'")
        if self.max_attempts < 1:
            raise StoreError(f"S3 option max_attempts={self.max_attempts} must be at least 1")
        if self.multipart_threshold < 5 * 1024 * 1024:
            raise StoreError("S3 option multipart_threshold must be at least 5 MiB (S3's minimum)")


class ObjectStore(Protocol):
    description: str
    """Where the store points, e.g. "s3://bucket/prefix"; never holds secrets."""

    def put_bytes(self, key: str, data: bytes) -> None: ...

    def put_file(self, key: str, path: Path) -> None: ...

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


def open_store(url: str, s3: S3Options | None = None) -> ObjectStore:
    """Opens "file:///abs/path", "file://./relative/path" or "s3://bucket/prefix"."""
    if url.startswith("file://"):
        from storage.stores.local import LocalStore

        return LocalStore(local_path(url))
    if url.startswith("s3://"):
        # boto3 is imported only when an S3 store is actually opened: it is slow to import.
        from storage.stores.s3 import S3Store

        bucket, _, prefix = url.removeprefix("s3://").partition("/")
        return S3Store(bucket, prefix, s3 or S3Options())
    scheme = url.partition("://")[0] if "://" in url else ""
    if scheme:
        raise StoreError(f"storage URL scheme {scheme!r} is not supported; use s3:// or file://")
    raise StoreError(f"storage URL {url!r} needs a scheme: s3://bucket/prefix or file:///path")


def local_path(url: str) -> Path:
    """The directory of a file:// URL: "file:///abs" is absolute, "file://./rel" relative to cwd."""
    rest = url.removeprefix("file://")
    if not rest:
        raise StoreError(f"storage URL {url!r} has no path; use file:///abs/path or file://./rel")
    if rest.startswith("localhost/"):
        rest = rest.removeprefix("localhost")
    return Path(rest).absolute()
