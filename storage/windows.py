"""Windows against each other: what overlaps, what is left of a window once others are cut out.

Pure, so the ledger's planning and `export` agree on one rule: windows never overlap.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from storage.layout import Window


def overlaps(first: Window, second: Window) -> bool:
    return first.start < second.end and second.start < first.end


def subtract(window: Window, occupied: Iterable[Window]) -> list[Window]:
    """The pieces of `window` that no window of `occupied` covers, oldest first."""
    pieces = [window]
    for taken in sorted(occupied):
        kept: list[Window] = []
        for piece in pieces:
            if not overlaps(piece, taken):
                kept.append(piece)
                continue
            if piece.start < taken.start:
                kept.append(Window(piece.start, taken.start))
            if taken.end < piece.end:
                kept.append(Window(taken.end, piece.end))
        pieces = kept
    return pieces


def fit(candidates: Iterable[Window], occupied: Iterable[Window]) -> list[Window]:
    """`candidates` with every occupied span cut out: a window already there stays as it is,
    and a window of another length that overlaps it is trimmed to what is left around it."""
    taken = list(occupied)
    fitted: list[Window] = []
    for candidate in candidates:
        if candidate in taken:
            fitted.append(candidate)
            continue
        fitted += subtract(candidate, taken)
    return fitted


def covered(window: Window, by: Iterable[Window]) -> bool:
    return not subtract(window, by)


def clip(windows: Iterable[Window], start: datetime, end: datetime) -> list[Window]:
    """The windows cut to [start, end) (their outer edges only)."""

    clipped = []
    for window in windows:
        low, high = max(window.start, start), min(window.end, end)
        if low < high:
            clipped.append(Window(low, high))
    return clipped
