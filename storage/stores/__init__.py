"""Object store implementations, and the one place that picks one for a storage URL."""

from __future__ import annotations

from pathlib import Path

from storage.objectstore import ObjectStore, StoreError
from storage.stores.s3_options import S3Options

__all__ = ["S3Options", "local_path", "open_store"]


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
