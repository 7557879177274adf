"""A callback's body as it arrives: in memory while small, in a temporary file past that.

Most callbacks are notices of a few hundred bytes. Creating, writing and removing a temporary
file for each of those ran on the event loop and cost more than the rest of answering it, so a
body stays in memory until it passes `memory_bytes`, and only then goes to disk. Memory held
by intake is therefore at most `memory_bytes` per callback being received.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import IO

from storage.objectstore import ObjectStore

MEMORY_BYTES = 64 * 1024


class CallbackBody:
    """Written chunk by chunk (`write`), then stored whole (`store`), then closed."""

    def __init__(self, tmp_dir: Path | None, memory_bytes: int = MEMORY_BYTES) -> None:
        self._tmp_dir = tmp_dir
        self._memory_bytes = memory_bytes
        self._memory = bytearray()
        self._file: IO[bytes] | None = None

    def close(self) -> None:
        """Removes the temporary file, if there was one."""
        if self._file is not None:
            self._file.close()

    def write(self, chunk: bytes) -> None:
        """Raises OSError when the body goes to disk and the disk refuses it (full, failing)."""
        if self._file is None and len(self._memory) + len(chunk) <= self._memory_bytes:
            self._memory += chunk
            return
        if self._file is None:
            self._file = tempfile.NamedTemporaryFile(dir=self._tmp_dir, prefix="callback-")  # noqa: SIM115
            self._file.write(self._memory)
            self._memory = bytearray()
        self._file.write(chunk)

    def finish(self) -> None:
        """Called once the whole body is written: what is on disk is flushed for `store`."""
        if self._file is not None:
            self._file.flush()

    def store(self, store: ObjectStore, key: str) -> None:
        """Puts the body at `key` (blocking: run it on the store's lane)."""
        if self._file is None:
            store.put_bytes(key, bytes(self._memory))
        else:
            store.put_file(key, Path(self._file.name))
