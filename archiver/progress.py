"""A progress bar for long commands: redrawn in place on a terminal, a line a while otherwise."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class ProgressBar:
    def __init__(
        self,
        total: int,
        *,
        stream: TextIO | None = None,
        width: int = 30,
        line_interval: float = 10.0,
    ) -> None:
        self._total = max(total, 1)
        self._stream = stream or sys.stderr
        self._width = width
        self._tty = self._stream.isatty()
        self._line_interval = line_interval
        self._last_line = 0.0
        self._last_text = ""
        self._last_written = ""

    def update(self, done: int, detail: str) -> None:
        filled = int(self._width * min(done, self._total) / self._total)
        bar = "#" * filled + "-" * (self._width - filled)
        text = f"[{bar}] {done}/{self._total} {detail}"
        if self._tty:
            self._stream.write("\r" + text.ljust(len(self._last_text)))
            self._stream.flush()
        elif text != self._last_text and (
            time.monotonic() - self._last_line >= self._line_interval or done >= self._total
        ):
            self._stream.write(text + "\n")
            self._stream.flush()
            self._last_line = time.monotonic()
            self._last_written = text
        self._last_text = text

    def close(self) -> None:
        """Ends the bar; off a terminal, the final state is written even if it was throttled."""
        if self._tty:
            self._stream.write("\n")
        elif self._last_text != self._last_written:
            self._stream.write(self._last_text + "\n")
            self._last_written = self._last_text
        self._stream.flush()
