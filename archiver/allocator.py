"""glibc's allocator told to keep large blocks out of its heap, so they go back to the system.

glibc serves an allocation above its mmap threshold with a mapping of its own, unmapped when
freed. But each time such a block is freed, glibc raises the threshold to that block's size
(up to 32 MiB), so in a long-running process large buffers soon come from the heap instead,
where freed space stays resident and fragments. Fixing the threshold (`mallopt`) turns that
raising off. 8 MiB keeps the 4 MiB decode blocks on the heap, where they are reused: a lower
threshold kept less memory still, but gave every block fresh pages and slowed processing (the
figures are in docs/performance.md, "glibc's mmap threshold fixed at 8 MiB").
"""

from __future__ import annotations

import ctypes
import os
import sys

MMAP_THRESHOLD_BYTES = 8 * 1024 * 1024
_M_MMAP_THRESHOLD = -3  # from glibc's malloc.h
_ENVIRONMENT = "MALLOC_MMAP_THRESHOLD_"  # glibc's own setting, read at start-up


def fix_mmap_threshold(threshold: int = MMAP_THRESHOLD_BYTES) -> int | None:
    """Fixes glibc's mmap threshold at `threshold` bytes; returns it, or None where nothing was
    changed: not glibc (musl, macOS), or the operator set `MALLOC_MMAP_THRESHOLD_` already."""
    if not sys.platform.startswith("linux") or _ENVIRONMENT in os.environ:
        return None
    libc = ctypes.CDLL(None)  # the C library this process already runs on
    if not hasattr(libc, "gnu_get_libc_version"):
        return None
    mallopt = libc.mallopt
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return threshold if mallopt(_M_MMAP_THRESHOLD, threshold) == 1 else None
