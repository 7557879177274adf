from __future__ import annotations

from datetime import UTC, datetime, timedelta

from storage.layout import Window, manifest_key, part_key, rejects_key, window_of_part

WINDOW = Window(datetime(2024, 3, 1, tzinfo=UTC), datetime(2024, 3, 2, tzinfo=UTC))


def test_keys_follow_the_contract_layout() -> None:
    day = WINDOW.start.date()
    assert part_key(day, WINDOW, 3) == (
        "chat_messages/date=2024-03-01/part-20240301T000000Z-20240302T000000Z-0003.parquet"
    )
    assert manifest_key(WINDOW) == "_manifests/chat_messages/20240301T000000Z-20240302T000000Z.json"
    assert rejects_key(WINDOW) == "_rejects/chat_messages/20240301T000000Z-20240302T000000Z.jsonl"


def test_window_of_part_reads_the_window_back_from_a_key() -> None:
    key = part_key(WINDOW.start.date() + timedelta(days=1), WINDOW, 12)
    assert window_of_part(key) == WINDOW
    assert window_of_part("prefix/" + key) == WINDOW
    assert window_of_part("chat_messages/date=2024-03-01/notes.txt") is None
    assert (
        window_of_part(
            "chat_messages/date=2024-03-01/part-20241301T000000Z-20240302T000000Z-0000.parquet"
        )
        is None
    )
