from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.corpus import ROLES, MessageCorpus, format_ms, hourly_counts

UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
FIELDS = [
    "id",
    "chatId",
    "chatThreadId",
    "content",
    "rawContent",
    "externalId",
    "role",
    "senderId",
    "createdAt",
    "updatedAt",
]
DAY = datetime(2024, 3, 1, tzinfo=UTC)


def chunked(
    corpus: MessageCorpus, start: datetime, end: datetime, step: timedelta
) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    cursor = start
    while cursor < end:
        messages.extend(corpus.between(cursor, min(cursor + step, end)))
        cursor += step
    return messages


def test_a_range_yields_the_same_messages_however_it_is_chunked() -> None:
    corpus = MessageCorpus(seed=3, messages_per_day=600)
    start, end = DAY - timedelta(hours=5), DAY + timedelta(hours=20)
    whole = list(corpus.between(start, end))
    assert whole
    assert chunked(corpus, start, end, timedelta(hours=1)) == whole
    assert chunked(corpus, start, end, timedelta(minutes=7, milliseconds=3)) == whole
    assert list(MessageCorpus(seed=3, messages_per_day=600).between(start, end)) == whole


@settings(max_examples=25, deadline=None)
@given(cuts=st.lists(st.integers(min_value=1, max_value=3 * 3_600_000 - 1), max_size=6))
def test_splitting_at_any_milliseconds_loses_and_repeats_nothing(cuts: list[int]) -> None:
    corpus = MessageCorpus(seed=11, messages_per_day=2400)
    start = DAY + timedelta(hours=9)
    bounds = [start + timedelta(milliseconds=cut) for cut in sorted(set(cuts))]
    edges = [start, *bounds, start + timedelta(hours=3)]
    pieces = [m for low, high in pairwise(edges) for m in corpus.between(low, high)]
    assert pieces == list(corpus.between(edges[0], edges[-1]))


def test_messages_are_sorted_and_inside_the_half_open_range() -> None:
    corpus = MessageCorpus(seed=5, messages_per_day=5000)
    start = DAY + timedelta(minutes=13, seconds=27, microseconds=500_500)
    end = DAY + timedelta(hours=5, minutes=41, seconds=3, microseconds=250_000)
    messages = list(corpus.between(start, end))
    created = [m["createdAt"] for m in messages]
    assert created == sorted(created)
    assert all(start <= datetime.fromisoformat(c) < end for c in created)
    before = list(corpus.between(DAY, start))
    after = list(corpus.between(end, DAY + timedelta(hours=6)))
    assert before[-1]["createdAt"] < created[0] and created[-1] <= after[0]["createdAt"]


def test_count_between_matches_the_messages_yielded() -> None:
    corpus = MessageCorpus(seed=5, messages_per_day=1000)
    start = DAY + timedelta(minutes=59, seconds=59, milliseconds=999)
    for end in (start, start + timedelta(milliseconds=2), start + timedelta(hours=30, minutes=1)):
        assert corpus.count_between(start, end) == len(list(corpus.between(start, end)))


def test_a_whole_utc_day_holds_exactly_messages_per_day() -> None:
    corpus = MessageCorpus(seed=1, messages_per_day=777)
    assert len(list(corpus.between(DAY, DAY + timedelta(days=1)))) == 777
    assert corpus.count_between(DAY, DAY + timedelta(days=183)) == 777 * 183
    for per_day in (0, 1, 23, 24, 25, 1_000_000):
        assert sum(hourly_counts(per_day)) == per_day


def test_zero_messages_per_day_yields_nothing() -> None:
    corpus = MessageCorpus(seed=1, messages_per_day=0)
    assert list(corpus.between(DAY, DAY + timedelta(days=30))) == []
    assert corpus.count_between(DAY, DAY + timedelta(days=30)) == 0


def test_an_empty_or_reversed_range_yields_nothing() -> None:
    corpus = MessageCorpus(seed=1, messages_per_day=1000)
    assert list(corpus.between(DAY, DAY)) == []
    assert list(corpus.between(DAY + timedelta(hours=1), DAY)) == []


def test_naive_datetimes_are_refused() -> None:
    corpus = MessageCorpus(seed=1, messages_per_day=10)
    with pytest.raises(ValueError, match="time zone"):
        list(corpus.between(datetime(2024, 1, 1), datetime(2024, 1, 2)))


def test_messages_have_exactly_the_api_fields_and_valid_values() -> None:
    corpus = MessageCorpus(seed=9, messages_per_day=3000, chats=12)
    messages = list(corpus.between(DAY, DAY + timedelta(days=1)))
    assert {m["role"] for m in messages} == set(ROLES)
    for m in messages:
        assert list(m) == FIELDS
        assert UUID4.match(m["id"]) and m["chatId"] in corpus.chat_ids
        assert m["chatThreadId"] is None or UUID4.match(m["chatThreadId"])
        assert m["senderId"] is None or UUID4.match(m["senderId"])
        assert isinstance(m["content"], str) and 0 < len(m["content"]) <= 4000
        assert (m["rawContent"] is not None) == (m["role"] == "assistant")
        assert m["externalId"] is None or 3 <= len(m["externalId"]) <= 250
        assert TIMESTAMP.match(m["createdAt"]) and TIMESTAMP.match(m["updatedAt"])
        assert m["updatedAt"] >= m["createdAt"]
    assert len(corpus.chat_ids) == 12
    assert any(m["updatedAt"] > m["createdAt"] for m in messages)
    assert any(m["chatThreadId"] for m in messages) and any(m["externalId"] for m in messages)


def test_ids_are_unique_across_days() -> None:
    corpus = MessageCorpus(seed=2, messages_per_day=20_000)
    ids = [m["id"] for m in corpus.between(DAY, DAY + timedelta(days=2))]
    assert len(ids) == len(set(ids)) == 40_000


def test_content_carries_the_text_that_breaks_naive_decoders() -> None:
    corpus = MessageCorpus(seed=4, messages_per_day=3000)
    contents = [m["content"] for m in corpus.between(DAY, DAY + timedelta(days=1))]
    text = "".join(contents)
    for needle in ("\n", '"', ",", "é", "\u0301", "こんにちは", "你好", "👨‍👩‍👧‍👦", "\r\n", "\t"):
        assert needle in text, needle
    assert max(len(c) for c in contents) > 1000
    assert sorted(len(c) for c in contents)[len(contents) // 2] < 100


def test_different_seeds_give_different_messages() -> None:
    one = list(MessageCorpus(seed=1, messages_per_day=100).between(DAY, DAY + timedelta(days=1)))
    two = list(MessageCorpus(seed=2, messages_per_day=100).between(DAY, DAY + timedelta(days=1)))
    assert {m["id"] for m in one}.isdisjoint({m["id"] for m in two})


def test_format_ms_writes_milliseconds_and_z() -> None:
    assert format_ms(0) == "1970-01-01T00:00:00.000Z"
    assert format_ms(1_709_251_199_999) == "2024-02-29T23:59:59.999Z"
