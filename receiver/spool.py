"""The spool's disk budget: what processing writes to local disk is checked against free space.

Downloads and decompressed archives go to the spool (the processing work directory, under
`TMPDIR`). Before a write of known size the free space is checked against it; while streaming,
free space is kept above a reserve, so a file that turns out larger than the disk stops early
with `SpoolFull` instead of filling the disk for every other writer on it, on every retry.
"""

from __future__ import annotations

import errno
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from storage.errors import TransientError

RESERVE_BYTES = 64 * 1024 * 1024  # left free for everyone else; at most a tenth of the disk


class SpoolFull(TransientError):
    """The spool has too little free disk for what processing must write. Retrying helps only
    once space is freed, so the worker retries with back-off like any transient error, but
    quarantines the window after ARCHIVER_MAX_ATTEMPTS tries with this reason."""

    def __init__(self, directory: Path, needed: int | None, available: int, what: str) -> None:
        need = (
            f"needs {human_size(needed)}" if needed else f"needs more than {human_size(available)}"
        )
        super().__init__(
            f"spool full: {what} {need} of spool in {spool_root(directory)}, has "
            f"{human_size(available)} free; "
            "free space there or point TMPDIR at a larger disk, then replay"
        )
        self.directory = directory
        self.needed = needed
        self.available = available


def spool_root(directory: Path) -> Path:
    """The spool an operator configures (TMPDIR), rather than one window's work directory."""
    root = Path(tempfile.gettempdir())
    return root if directory.is_relative_to(root) else directory


def human_size(count: int | None) -> str:
    if count is None:
        return "?"
    for unit, size in (("GB", 1024**3), ("MB", 1024**2), ("KB", 1024)):
        if count >= size:
            return f"{count / size:.1f} {unit}"
    return f"{count} B"


def reserve_bytes(directory: Path) -> int:
    return min(RESERVE_BYTES, shutil.disk_usage(directory).total // 10)


def free_bytes(directory: Path) -> int:
    """Free space for us, above the reserve."""
    return max(0, shutil.disk_usage(directory).free - reserve_bytes(directory))


def ensure_room(directory: Path, needed: int, what: str) -> None:
    """Raises SpoolFull unless `needed` more bytes fit in `directory` above the reserve."""
    available = free_bytes(directory)
    if needed > available:
        raise SpoolFull(directory, needed, available, what)


def is_disk_full(error: BaseException) -> bool:
    """ENOSPC or EDQUOT, also as pyarrow reports it (an OSError with only the message)."""
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    text = str(error)
    return "No space left on device" in text or "Disk quota exceeded" in text


class Headroom:
    """Watches one streaming write: raises SpoolFull once the disk is down to the reserve."""

    def __init__(self, directory: Path, what: str, expected: int | None = None) -> None:
        self._directory = directory
        self._what = what
        self._expected = expected
        self._written = 0

    def wrote(self, count: int) -> None:
        """Call before writing `count` more bytes (a statvfs per chunk: about a microsecond)."""
        if free_bytes(self._directory) < count:
            raise self.full()
        self._written += count

    def full(self) -> SpoolFull:
        """The error for this write, with what it had written and what was left."""
        available = self._written + free_bytes(self._directory)
        needed = self._expected if self._expected and self._expected > available else None
        return SpoolFull(self._directory, needed, available, self._what)


@contextmanager
def disk_full_is_spool_full(directory: Path, what: str) -> Iterator[None]:
    """Turns running out of disk anywhere inside (a body copied from the store, a Parquet part
    being written) into SpoolFull, so it is treated as one error however it surfaced."""
    try:
        yield
    except SpoolFull:
        raise
    except Exception as error:
        if not is_disk_full(error):
            raise
        raise SpoolFull(directory, None, free_bytes(directory), what) from error
