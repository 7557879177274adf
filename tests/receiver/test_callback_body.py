"""A callback's body: in memory while small, on disk past that, stored whole either way."""

from __future__ import annotations

import os
from contextlib import closing
from pathlib import Path

from receiver.callback_body import CallbackBody
from storage.stores.local import LocalStore


def test_a_small_body_is_stored_without_touching_the_disk(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    store = LocalStore(tmp_path / "archive")

    with closing(CallbackBody(spool, memory_bytes=1024)) as body:
        body.write(b'{"status": ')
        body.write(b'"failed"}')
        body.finish()
        assert list(spool.iterdir()) == []
        body.store(store, "raw/notice.json")

    assert store.get_bytes("raw/notice.json") == b'{"status": "failed"}'


def test_a_body_past_the_memory_limit_goes_to_disk_whole_and_is_removed_after(
    tmp_path: Path,
) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    store = LocalStore(tmp_path / "archive")
    chunks = [os.urandom(700) for _ in range(5)]

    with closing(CallbackBody(spool, memory_bytes=1024)) as body:
        for chunk in chunks:
            body.write(chunk)
        body.finish()
        assert len(list(spool.iterdir())) == 1
        body.store(store, "raw/export.bin")

    assert store.get_bytes("raw/export.bin") == b"".join(chunks)
    assert list(spool.iterdir()) == []
