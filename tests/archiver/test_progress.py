"""The progress bar as a user sees it, on a terminal and off one."""

from __future__ import annotations

import io

from archiver.progress import ProgressBar


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_off_a_terminal_lines_come_at_once_then_periodically_with_current_counts() -> None:
    stream, clock = io.StringIO(), Clock()
    bar = ProgressBar(10, stream=stream, line_interval=10.0, clock=clock)
    bar.update(0, "committed")
    clock.now += 4
    bar.update(2, "committed")  # throttled, but never lost: the next line has the new count
    clock.now += 7
    bar.update(3, "committed")
    clock.now += 11
    bar.update(3, "committed")  # no change in counts: the periodic line still comes
    bar.close()
    lines = stream.getvalue().splitlines()
    assert [line.split(" (")[0] for line in lines] == [
        "0/10 windows committed",
        "3/10 windows committed",
        "3/10 windows committed",
    ]
    assert lines[1].endswith("(16.4/min, ETA 0m25s, 11s elapsed)")
    assert lines[0].endswith("(0.0/min, ETA unknown, 0s elapsed)")


def test_off_a_terminal_the_final_count_is_written_even_when_throttled() -> None:
    stream, clock = io.StringIO(), Clock()
    bar = ProgressBar(4, stream=stream, clock=clock)
    bar.update(1)
    clock.now += 1
    bar.update(2)
    bar.close()
    assert stream.getvalue().splitlines()[-1].startswith("2/4 windows (")


def test_on_a_terminal_the_bar_draws_at_once_with_rate() -> None:
    stream = Terminal()
    bar = ProgressBar(8, stream=stream, unit="windows")
    bar.update(2, "committed")
    bar.close()
    screen = stream.getvalue()
    assert "2/8" in screen and "/min" in screen and "committed" in screen
