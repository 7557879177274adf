"""A directory on a local or mounted filesystem as an object store.

Writes go to a temporary file beside the target and are renamed over it, so a reader never
sees half an object and a crash leaves at most a hidden temporary file.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from storage.objectstore import ObjectInfo, ObjectNotFound, StoreError, check_key

_TMP_MARK = ".tmp-"
_COPY_CHUNK = 1024 * 1024


class LocalStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.description = f"file://{root}"

    def put_bytes(self, key: str, data: bytes) -> None:
        with self._errors("write", key), self._atomic(self._path(key)) as out:
            out.write(data)

    def put_file(self, key: str, path: Path) -> None:
        with (
            self._errors("write", key),
            path.open("rb") as source,
            self._atomic(self._path(key)) as out,
        ):
            shutil.copyfileobj(source, out, _COPY_CHUNK)

    def copy(self, source: str, key: str) -> None:
        target = self._path(key)
        with self._errors("read", source):
            origin = self._path(source)
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}{_TMP_MARK}{uuid.uuid4().hex}")
            try:
                # A hard link shares the bytes; the rename makes the new name appear whole.
                os.link(origin, tmp)
            except FileNotFoundError:
                raise
            except OSError:  # a filesystem without hard links: copy the bytes instead
                shutil.copyfile(origin, tmp)
            try:
                os.replace(tmp, target)
            finally:
                tmp.unlink(missing_ok=True)

    def get_bytes(self, key: str) -> bytes:
        with self._errors("read", key):
            return self._path(key).read_bytes()

    def download_file(self, key: str, path: Path) -> None:
        with self._errors("read", key), self._path(key).open("rb") as source:
            path.parent.mkdir(parents=True, exist_ok=True)
            with _atomic_file(path) as out:
                shutil.copyfileobj(source, out, _COPY_CHUNK)

    def size(self, key: str) -> int | None:
        path = self._path(key)
        with self._errors("stat", key):
            try:
                stat = path.stat()
            except (FileNotFoundError, NotADirectoryError):
                return None
        return None if path.is_dir() else stat.st_size

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        directory = prefix.rpartition("/")[0]
        base = self._path(directory) if directory else self.root
        if not base.is_dir():
            return
        found: list[ObjectInfo] = []
        with self._errors("list", prefix):
            for dirpath, _dirnames, filenames in os.walk(base):
                for filename in filenames:
                    if filename.startswith(".") and _TMP_MARK in filename:
                        continue
                    full = Path(dirpath, filename)
                    key = full.relative_to(self.root).as_posix()
                    if key.startswith(prefix):
                        found.append(ObjectInfo(key, full.stat().st_size))
        found.sort(key=lambda info: info.key)
        yield from found

    def delete(self, key: str) -> None:
        with self._errors("delete", key):
            self._path(key).unlink(missing_ok=True)

    def check_access(self) -> None:
        key = f"_check-{uuid.uuid4().hex}"
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create {self.root}: {exc.strerror or exc}") from exc
        self.put_bytes(key, b"probe")
        if self.get_bytes(key) != b"probe":
            raise StoreError(f"{self.description}: a probe object read back differently")
        self.delete(key)

    def fast_failing(self) -> LocalStore:
        """A local directory has no timeouts to shorten; the callers' own bounds apply."""
        return self

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*check_key(key).split("/"))

    @contextmanager
    def _atomic(self, path: Path) -> Iterator[BinaryIO]:
        path.parent.mkdir(parents=True, exist_ok=True)
        with _atomic_file(path) as out:
            yield out

    @contextmanager
    def _errors(self, action: str, key: str) -> Iterator[None]:
        try:
            yield
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
            if action == "read":
                raise ObjectNotFound(f"no object {self.description}/{key}") from exc
            raise StoreError(
                f"cannot {action} {self.description}/{key}: {exc.strerror or exc}"
            ) from exc
        except OSError as exc:
            raise StoreError(
                f"cannot {action} {self.description}/{key}: {exc.strerror or exc}"
            ) from exc


@contextmanager
def _atomic_file(path: Path) -> Iterator[BinaryIO]:
    """Yields a temporary file that replaces `path` (after fsync) only if the block succeeds."""
    tmp = path.with_name(f".{path.name}{_TMP_MARK}{uuid.uuid4().hex}")
    try:
        with tmp.open("wb") as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
