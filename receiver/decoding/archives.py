"""gzip and zip unwrapping as streams, with a cap on how far an archive may expand.

Nothing is unpacked to disk except a zip inside another archive (zip needs to seek). Every
decompressed byte is counted against one budget per downloaded file, so a decompression bomb
stops with a DecodeError after at most `MAX_RATIO` times the file's size (or `RATIO_FLOOR` for
small files), instead of filling the memory; a nested zip's copy also stops with SpoolFull once
the disk is down to its reserve, so even a bomb inside the budget never fills the disk.
"""

from __future__ import annotations

import io
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import IO, cast

from receiver.decoding.errors import DecodeError
from receiver.spool import Headroom, human_size, is_disk_full

GZIP_MAGIC = b"\x1f\x8b"
ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")  # a member's header; an empty archive's end record

MAX_RATIO = 200
RATIO_FLOOR = 256 * 1024 * 1024
COPY_CHUNK = 1024 * 1024
GZIP_INPUT_BYTES = 1024 * 1024
_GZIP_WBITS = 31  # zlib's gzip mode: header, deflate data, CRC-32 and length trailer

Opener = Callable[[], AbstractContextManager[IO[bytes]]]


class ExpansionBudget:
    """How many decompressed bytes one file may produce, over all its layers and members."""

    def __init__(self, compressed_bytes: int) -> None:
        self.limit = max(MAX_RATIO * compressed_bytes, RATIO_FLOOR)
        self.used = 0

    def spend(self, count: int) -> None:
        self.used += count
        if self.used > self.limit:
            raise DecodeError(
                f"the archive expands to more than {self.limit} bytes ({MAX_RATIO} times its "
                "size); refused as a likely decompression bomb"
            )


class _Inflated(io.RawIOBase):
    """A decompressing stream that counts its output and reports corruption as DecodeError."""

    def __init__(self, inner: IO[bytes], budget: ExpansionBudget, what: str) -> None:
        super().__init__()
        self._inner = inner
        self._budget = budget
        self._what = what

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        try:
            data = self._inner.read(-1 if size is None else size)
        except (OSError, EOFError, zlib.error, zipfile.BadZipFile) as error:
            raise DecodeError(f"{self._what} is corrupt or truncated: {error}") from None
        self._budget.spend(len(data))
        return data

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def open_file(path: Path) -> Opener:
    return lambda: path.open("rb")


def gunzip(opener: Opener, budget: ExpansionBudget) -> Opener:
    """An opener for the decompressed content of the gzip stream `opener` gives."""

    @contextmanager
    def open_inflated() -> Iterator[IO[bytes]]:
        with opener() as raw:
            inflating = cast(IO[bytes], _GzipMembers(raw))
            yield cast(IO[bytes], _Inflated(inflating, budget, "the gzip data"))

    return open_inflated


class _GzipMembers(io.RawIOBase):
    """gzip members one after another, zero padding between them skipped (as GzipFile
    reads them), inflated by zlib, which checks each header and CRC-32 and length trailer.

    GzipFile in Python 3.11 inflates 8 KiB of input per call; with the GIL shared by the
    threads that decode what it yields, those many small calls cost more than inflating.
    """

    def __init__(self, raw: IO[bytes]) -> None:
        super().__init__()
        self._raw = raw
        self._inflater = zlib.decompressobj(_GZIP_WBITS)
        self._input = b""  # compressed bytes the inflater has not taken yet
        self._in_member = False

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            parts = []
            while data := self.read(COPY_CHUNK):
                parts.append(data)
            return b"".join(parts)
        while size:
            if not self._input:
                self._input = self._raw.read(GZIP_INPUT_BYTES)
                if not self._input:
                    if self._in_member:
                        raise EOFError("the compressed data ends before its end-of-stream marker")
                    return b""
            if not self._in_member:
                self._input = self._input.lstrip(b"\0")
                if not self._input:
                    continue
                self._in_member = True
            data = self._inflater.decompress(self._input, size)
            self._input = self._inflater.unconsumed_tail
            if self._inflater.eof:
                self._input = self._inflater.unused_data
                self._inflater = zlib.decompressobj(_GZIP_WBITS)
                self._in_member = False
            if data:
                return data
        return b""

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def spool(opener: Opener, directory: Path, budget: ExpansionBudget | None = None) -> Path:
    """Copies a stream to a file in the fresh `directory` (zip archives need to seek); raises
    SpoolFull, leaving no file, once the disk is down to its reserve."""
    target = directory / "nested.zip"
    what = "the zip inside the archive"
    if budget is not None:
        what += f" (which may expand to {human_size(budget.limit - budget.used)})"
    headroom = Headroom(directory, what)
    try:
        with opener() as source, target.open("wb") as sink:
            while chunk := source.read(COPY_CHUNK):
                headroom.wrote(len(chunk))
                sink.write(chunk)
    except OSError as error:
        target.unlink(missing_ok=True)
        if is_disk_full(error):
            raise headroom.full() from None
        raise
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    return target


def _skipped(info: zipfile.ZipInfo) -> bool:
    """Directories and macOS resource forks are not data."""
    name = info.filename
    return info.is_dir() or name.startswith("__MACOSX/") or name.rsplit("/", 1)[-1].startswith("._")


@contextmanager
def zip_members(path: Path, budget: ExpansionBudget) -> Iterator[list[tuple[str, Opener]]]:
    """The data members of a zip archive in name order, each with an opener."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as error:
        raise DecodeError(f"the zip archive is corrupt: {error}") from None
    with archive:
        if any(not info.filename for info in archive.infolist()):
            raise DecodeError("the zip archive is corrupt: a member has no name")
        members = sorted((i for i in archive.infolist() if not _skipped(i)), key=_name)
        declared = sum(info.file_size for info in members)
        if declared > budget.limit - budget.used:
            budget.spend(declared)
        for info in members:
            if info.flag_bits & 0x1:
                raise DecodeError(f"zip member {info.filename!r} is encrypted")

        def opener_for(info: zipfile.ZipInfo) -> Opener:
            @contextmanager
            def open_member() -> Iterator[IO[bytes]]:
                try:
                    member = archive.open(info)
                except (zipfile.BadZipFile, NotImplementedError, RuntimeError, OSError) as error:
                    raise DecodeError(f"zip member {info.filename!r}: {error}") from None
                with member:
                    yield cast(
                        IO[bytes], _Inflated(member, budget, f"zip member {info.filename!r}")
                    )

            return open_member

        yield [(info.filename, opener_for(info)) for info in members]


def _name(info: zipfile.ZipInfo) -> str:
    return info.filename
