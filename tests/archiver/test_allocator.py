import sys

import pytest

from archiver.allocator import MMAP_THRESHOLD_BYTES, fix_mmap_threshold

glibc_only = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="glibc's mallopt exists on Linux only"
)


@glibc_only
def test_the_mmap_threshold_is_fixed_on_glibc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    assert fix_mmap_threshold() == MMAP_THRESHOLD_BYTES


def test_an_operators_own_threshold_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "131072")
    assert fix_mmap_threshold() is None
