"""Progress of long commands: a live bar on a terminal, a plain line every few seconds otherwise.

On a terminal, rich draws the bar at once and keeps the elapsed time moving between updates.
Off a terminal (systemd, a Kubernetes Job, CI) a line with the current counts, rate and ETA is
written at the first update, then at most every `line_interval` seconds, and at the end.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

Clock = Callable[[], float]


def format_eta(seconds: float | None) -> str:
    if seconds is None:
        return "ETA unknown"
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"ETA {hours}h{minutes:02d}m"
    return f"ETA {minutes}m{seconds:02d}s"


class Rate:
    """Items per minute since the start, and the time the rest would take at that pace.

    Items already done at the first update (an interrupted run, continued) are not counted as
    speed.
    """

    def __init__(self, total: int, clock: Clock) -> None:
        self.total = total
        self._clock = clock
        self._started = clock()
        self._baseline: int | None = None

    def elapsed(self) -> float:
        return self._clock() - self._started

    def describe(self, done: int) -> str:
        if self._baseline is None:
            self._baseline = done
        elapsed = self.elapsed()
        if done >= self.total:
            return f"{max(done - self._baseline, 0) / max(elapsed, 1e-9) * 60:.1f}/min, done"
        if done <= self._baseline or elapsed <= 0:
            return f"0.0/min, {format_eta(None)}"
        per_second = (done - self._baseline) / elapsed
        remaining = max(self.total - done, 0) / per_second
        return f"{per_second * 60:.1f}/min, {format_eta(remaining)}"


class ProgressBar:
    def __init__(
        self,
        total: int,
        *,
        unit: str = "windows",
        stream: TextIO | None = None,
        line_interval: float = 10.0,
        clock: Clock = time.monotonic,
    ) -> None:
        self._total = max(total, 0)
        self._stream = stream or sys.stderr
        self._unit = unit
        self._line_interval = line_interval
        self._clock = clock
        self._rate = Rate(self._total, clock)
        self._done = 0
        self._detail = ""
        self._last_line_at: float | None = None
        self._last_written = ""
        self._last_done_written = -1
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        if self._stream.isatty():
            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]}"),
                TimeElapsedColumn(),
                TextColumn("{task.fields[detail]}"),
                console=Console(file=self._stream),
                transient=False,
            )
            self._task = self._progress.add_task(
                unit, total=self._total, rate=self._rate.describe(0), detail=""
            )
            self._progress.start()

    @property
    def total(self) -> int:
        return self._total

    @total.setter
    def total(self, value: int) -> None:
        """A window split in halves makes one item two."""
        self._total = max(value, 0)
        self._rate.total = self._total
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, total=self._total)

    def _line(self) -> str:
        detail = f" {self._detail}" if self._detail else ""
        return (
            f"{self._done}/{self._total} {self._unit}{detail} "
            f"({self._rate.describe(self._done)}, {int(self._rate.elapsed())}s elapsed)"
        )

    def _write_line(self) -> None:
        text = self._line()
        self._stream.write(text + "\n")
        self._stream.flush()
        self._last_line_at = self._clock()
        self._last_written = text
        self._last_done_written = self._done

    def update(self, done: int, detail: str = "") -> None:
        self._done, self._detail = done, detail
        if self._progress is not None and self._task is not None:
            self._progress.update(
                self._task, completed=done, rate=self._rate.describe(done), detail=detail
            )
            return
        finished = done >= self._total and done != self._last_done_written
        if (
            self._last_line_at is None
            or self._clock() - self._last_line_at >= self._line_interval
            or finished
        ):
            self._write_line()

    def close(self) -> None:
        """Ends the bar; off a terminal, the final counts are written if the last line differs."""
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
            return
        if (
            self._done != self._last_done_written
            or self._line().split(" (")[0] != (self._last_written.split(" (")[0])
        ):
            self._write_line()
