"""pyiceberg's FileIO with every write going through the archive's own object store.

Reads use pyarrow's filesystems (what pyiceberg's scans need). Writes and deletes (data files,
manifests, manifest lists, metadata files) go through the same ObjectStore as the plain layout,
so the S3 endpoint, addressing style, checksum policy, encryption and retries configured for
it apply to the table too: a store that rejects the newer checksum headers works for both.

pyiceberg builds a FileIO from string properties alone, so the store is described by them.
"""

from __future__ import annotations

import io
import json
import os
import threading
from dataclasses import asdict
from pathlib import Path
from types import TracebackType

from pyiceberg.io import (
    S3_ENDPOINT,
    S3_FORCE_VIRTUAL_ADDRESSING,
    S3_REGION,
    InputFile,
    OutputFile,
    OutputStream,
)
from pyiceberg.io.pyarrow import PyArrowFileIO
from pyiceberg.typedef import Properties

from storage.objectstore import ObjectStore, S3Options, StoreError, local_path, open_store

STORAGE_URL = "chat-archiver.storage-url"
S3_OPTIONS = "chat-archiver.s3-options"
IO_IMPL = f"{__name__}.StoreFileIO"


def root_url(storage_url: str) -> str:
    """The absolute URL the store's keys are relative to (file:///abs/path or s3://b/p)."""
    if storage_url.startswith("file://"):
        return "file://" + local_path(storage_url).as_posix().rstrip("/")
    return storage_url.rstrip("/")


def io_properties(storage_url: str, s3: S3Options) -> dict[str, str]:
    """Catalog properties that make pyiceberg use StoreFileIO on this store."""
    properties = {
        "py-io-impl": IO_IMPL,
        STORAGE_URL: root_url(storage_url),
        S3_OPTIONS: json.dumps(asdict(s3)),
    }
    if s3.endpoint_url:
        properties[S3_ENDPOINT] = s3.endpoint_url
    if s3.addressing_style == "virtual":
        properties[S3_FORCE_VIRTUAL_ADDRESSING] = "true"
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if region:
        properties[S3_REGION] = region
    return properties


_STORES: dict[tuple[str, str], ObjectStore] = {}
_STORES_LOCK = threading.Lock()


def _shared_store(root: str, s3_options: str) -> ObjectStore:
    """One store per process and configuration: pyiceberg makes a FileIO for every table it
    loads, and a new S3 client costs far more than the commit it would serve."""
    with _STORES_LOCK:
        store = _STORES.get((root, s3_options))
        if store is None:
            store = open_store(root, S3Options(**json.loads(s3_options)))
            _STORES[(root, s3_options)] = store
        return store


class StoreFileIO(PyArrowFileIO):
    def __init__(self, properties: Properties = {}) -> None:  # noqa: B006 - pyiceberg's signature
        super().__init__(properties)
        root = properties.get(STORAGE_URL)
        if not root:
            raise StoreError(f"{IO_IMPL} needs the catalog property {STORAGE_URL}")
        self.root = root
        self.store = _shared_store(root, properties.get(S3_OPTIONS, "{}"))

    def key(self, location: str) -> str:
        """The store key of an absolute location under the root."""
        normalized = location
        if not normalized.startswith(self.root + "/"):
            raise StoreError(
                f"{location} is outside the archive at {self.root}; the table's location "
                "must be under ARCHIVER_STORAGE_URL"
            )
        return normalized.removeprefix(self.root + "/")

    def new_output(self, location: str) -> OutputFile:  # type: ignore[override]
        return _StoreOutputFile(location, self)

    def delete(self, location: str | InputFile | OutputFile) -> None:
        path = location if isinstance(location, str) else location.location
        self.store.delete(self.key(path))

    def upload(self, location: str, path: Path) -> None:
        """A local file to `location`, streamed (data files are too big to buffer)."""
        self.store.put_file(self.key(location), path)


class _StoreOutputFile(OutputFile):
    def __init__(self, location: str, file_io: StoreFileIO) -> None:
        super().__init__(location)
        self._io = file_io

    def __len__(self) -> int:
        size = self._io.store.size(self._io.key(self.location))
        if size is None:
            raise FileNotFoundError(self.location)
        return size

    def exists(self) -> bool:
        return self._io.store.size(self._io.key(self.location)) is not None

    def to_input_file(self) -> InputFile:
        return self._io.new_input(self.location)

    def create(self, overwrite: bool = False) -> OutputStream:
        if not overwrite and self.exists():
            raise FileExistsError(f"{self.location} already exists")
        return _UploadOnClose(self._io.store, self._io.key(self.location))


class _UploadOnClose(io.BytesIO):
    """Buffers a (small) metadata file and stores it whole on close; discards it on error."""

    def __init__(self, store: ObjectStore, key: str) -> None:
        super().__init__()
        self._store = store
        self._key = key
        self._discard = False

    def close(self) -> None:
        if self.closed:
            return
        data = self.getvalue()
        super().close()
        if not self._discard:
            self._store.put_bytes(self._key, data)

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._discard = error is not None
        self.close()
