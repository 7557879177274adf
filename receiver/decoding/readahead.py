"""Reading a stream ahead in a thread, so that decompressing it overlaps with decoding it.

zlib releases the GIL while it inflates, so a gzip or zip member read here decompresses on
one core while the records already read are parsed and written on the other. At most
`depth` chunks wait, so memory stays bounded.
"""

from __future__ import annotations

import contextlib
import io
import queue
import threading
from typing import IO

CHUNK_BYTES = 2 * 1024 * 1024
DEPTH = 2


class ReadAhead(io.RawIOBase):
    """`inner`'s bytes, read `chunk_bytes` at a time by a thread at most `depth` chunks ahead.

    An exception from `inner` is raised to the reader where it happened in the stream.
    `close` stops the thread; it must be called before `inner` is closed.
    """

    def __init__(
        self, inner: IO[bytes], chunk_bytes: int = CHUNK_BYTES, depth: int = DEPTH
    ) -> None:
        super().__init__()
        if chunk_bytes < 1 or depth < 1:
            raise ValueError("chunk_bytes and depth must be at least 1")
        self._inner = inner
        self._chunk = chunk_bytes
        self._queue: queue.Queue[bytes | Exception] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._fill, name="read-ahead", daemon=True)
        self._current = memoryview(b"")
        self._ended = False
        self._thread.start()

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            parts = []
            while data := self.read(self._chunk):
                parts.append(data)
            return b"".join(parts)
        if not self._current and not self._ended:
            item = self._queue.get()
            if isinstance(item, Exception):
                self._ended = True
                raise item
            self._ended = not item
            if size >= len(item):
                return item  # the whole chunk: no copy
            self._current = memoryview(item)
        data = bytes(self._current[:size])
        self._current = self._current[size:]
        return data

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._stop.set()
        while self._thread.is_alive():
            with contextlib.suppress(queue.Empty):
                self._queue.get(timeout=0.1)  # unblocks a waiting put
        self._current = memoryview(b"")
        super().close()

    def _fill(self) -> None:
        try:
            while not self._stop.is_set():
                data = self._inner.read(self._chunk)
                self._put(data)
                if not data:
                    return
        except Exception as error:  # noqa: BLE001 - handed to the reader, who raises it
            self._put(error)

    def _put(self, item: bytes | Exception) -> None:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue
