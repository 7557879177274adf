"""Deterministic chat messages, generated per UTC hour.

Each hour's messages derive only from (seed, hour start), so a range yields the same messages
however it is chunked: the property the archiver's no-loss, no-duplicate tests lean on. Counts
follow a fixed daily curve whose hours add up to exactly `messages_per_day`.
"""

from __future__ import annotations

import random
from bisect import bisect_left
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from simulator.texts import AGENT_TEXTS, ASSISTANT_TEXTS, RAW_MARKERS, SYSTEM_TEXTS, USER_TEXTS

ROLES = ("user", "assistant", "agent", "system", "external")
HOUR_MS = 3_600_000
HOUR_US = HOUR_MS * 1000
MAX_CONTENT = 4000

# Relative traffic per UTC hour of day: quiet nights, busy office hours.
HOUR_WEIGHTS = (2, 1, 1, 1, 1, 2, 3, 5, 7, 8, 8, 8, 7, 7, 8, 8, 7, 6, 5, 5, 4, 4, 3, 2)

_VERSION_MASK = ~(0xF000 << 64)
_VERSION_4 = 0x4000 << 64
_VARIANT_MASK = ~(0xC000 << 48)
_VARIANT_RFC = 0x8000 << 48
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SEPARATORS = (" ", "\n", ", ", "\n\n", " — ")
_THREADS_PER_CHAT = 3


def uuid4_from_bits(bits: int) -> str:
    """A UUID v4 string from 128 random bits, without the cost of uuid.UUID objects."""
    bits = (bits & _VERSION_MASK) | _VERSION_4
    bits = (bits & _VARIANT_MASK) | _VARIANT_RFC
    h = f"{bits:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def format_ms(epoch_ms: int) -> str:
    """An instant as the API writes it: ISO-8601, UTC, millisecond precision, `Z`."""
    moment = _EPOCH + timedelta(milliseconds=epoch_ms)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{epoch_ms % 1000:03d}Z"


def to_epoch_us(moment: datetime) -> int:
    """Microseconds since the epoch of a timezone-aware datetime."""
    if moment.tzinfo is None:
        raise ValueError(f"{moment!r} has no time zone; pass a timezone-aware datetime")
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def hourly_counts(messages_per_day: int) -> tuple[int, ...]:
    """Splits a day's messages over its 24 hours (largest remainder), summing exactly."""
    total = sum(HOUR_WEIGHTS)
    shares = [messages_per_day * weight for weight in HOUR_WEIGHTS]
    counts = [share // total for share in shares]
    leftover = messages_per_day - sum(counts)
    by_remainder = sorted(range(24), key=lambda hour: (-(shares[hour] % total), hour))
    for hour in by_remainder[:leftover]:
        counts[hour] += 1
    return tuple(counts)


class MessageCorpus:
    """All messages of one simulated workspace, reproducible from a seed."""

    def __init__(self, seed: int, messages_per_day: int, chats: int = 40) -> None:
        if messages_per_day < 0:
            raise ValueError("messages_per_day must be 0 or more")
        if chats < 1:
            raise ValueError("chats must be 1 or more")
        self.seed = seed
        self.messages_per_day = messages_per_day
        rng = random.Random(f"chat-simulator:{seed}:pools")

        def new_id() -> str:
            return uuid4_from_bits(rng.getrandbits(128))

        self.chat_ids: tuple[str, ...] = tuple(new_id() for _ in range(chats))
        self._threads = tuple(
            tuple(new_id() for _ in range(_THREADS_PER_CHAT)) for _ in range(chats)
        )
        self._users = tuple(new_id() for _ in range(chats))
        self._external_users = tuple(new_id() for _ in range(chats))
        self._agents = tuple(new_id() for _ in range(8))
        self._assistants = tuple(new_id() for _ in range(2))
        self._long_texts = tuple(_long_text(rng, length) for length in _long_lengths(rng))
        self._hour_counts = hourly_counts(messages_per_day)

    def between(self, start: datetime, end: datetime) -> Iterator[dict[str, Any]]:
        """Messages whose createdAt lies in [start, end), sorted by createdAt."""
        start_us, end_us = to_epoch_us(start), to_epoch_us(end)
        if end_us <= start_us or self.messages_per_day == 0:
            return
        for hour in range(start_us // HOUR_US, (end_us - 1) // HOUR_US + 1):
            if self._hour_counts[hour % 24] == 0:
                continue
            rng, offsets = self._offsets(hour)
            first, stop = _slice(offsets, hour, start_us, end_us)
            if first < stop:
                yield from self._messages(hour, rng, offsets, first, stop)

    def count_between(self, start: datetime, end: datetime) -> int:
        """How many messages `between` yields, without building them."""
        start_us, end_us = to_epoch_us(start), to_epoch_us(end)
        if end_us <= start_us or self.messages_per_day == 0:
            return 0
        count = 0
        for hour in range(start_us // HOUR_US, (end_us - 1) // HOUR_US + 1):
            hour_start = hour * HOUR_US
            if start_us <= hour_start and hour_start + HOUR_US <= end_us:
                count += self._hour_counts[hour % 24]
            elif self._hour_counts[hour % 24]:
                first, stop = _slice(self._offsets(hour)[1], hour, start_us, end_us)
                count += max(0, stop - first)
        return count

    def _offsets(self, hour: int) -> tuple[random.Random, list[int]]:
        """The hour's generator and its messages' millisecond offsets, sorted."""
        rng = random.Random(f"chat-simulator:{self.seed}:{hour}")
        rand = rng.random
        offsets = sorted([int(rand() * HOUR_MS) for _ in range(self._hour_counts[hour % 24])])
        return rng, offsets

    def _messages(
        self, hour: int, rng: random.Random, offsets: list[int], first: int, stop: int
    ) -> Iterator[dict[str, Any]]:
        """Builds the hour's messages in order; those before `first` only advance the generator."""
        rand, bits = rng.random, rng.getrandbits
        hour_ms = hour * HOUR_MS
        prefix = format_ms(hour_ms)[:14]
        chats, threads = self.chat_ids, self._threads
        n_chats = len(chats)
        for index in range(stop):
            offset = offsets[index]
            minute, rest = divmod(offset, 60_000)
            created = f"{prefix}{minute:02d}:{rest // 1000:02d}.{rest % 1000:03d}Z"
            chat = int(n_chats * rand() ** 1.5)
            role_draw = rand()
            thread = threads[chat][int(rand() * _THREADS_PER_CHAT)] if rand() < 0.3 else None
            message_id = uuid4_from_bits(bits(128))
            raw: str | None = None
            external: str | None = None
            if role_draw < 0.45:
                role, sender = "user", self._users[chat]
                content = self._content(rand, USER_TEXTS)
                if rand() < 0.1:
                    external = _external_id(rand, bits)
            elif role_draw < 0.80:
                role = "assistant"
                sender = self._assistants[int(rand() * len(self._assistants))]
                content = self._content(rand, ASSISTANT_TEXTS)
                raw = content + RAW_MARKERS[int(rand() * len(RAW_MARKERS))]
            elif role_draw < 0.90:
                role = "agent"
                sender = self._agents[int(rand() * len(self._agents))]
                content = self._content(rand, AGENT_TEXTS)
            elif role_draw < 0.95:
                role, content = "system", SYSTEM_TEXTS[int(rand() * len(SYSTEM_TEXTS))]
                sender = None
            else:
                role, sender = "external", self._external_users[chat]
                content = self._content(rand, USER_TEXTS)
                external = _external_id(rand, bits)
            updated = created
            if rand() < 0.08:
                updated = format_ms(hour_ms + offset + 1 + int(rand() * 172_800_000))
            if index >= first:
                yield {
                    "id": message_id,
                    "chatId": chats[chat],
                    "chatThreadId": thread,
                    "content": content,
                    "rawContent": raw,
                    "externalId": external,
                    "role": role,
                    "senderId": sender,
                    "createdAt": created,
                    "updatedAt": updated,
                }

    def _content(self, rand: Any, pool: tuple[str, ...]) -> str:
        draw = rand()
        text = pool[int(rand() * len(pool))]
        if draw < 0.015:
            return self._long_texts[int(rand() * len(self._long_texts))]
        if draw < 0.25:
            separator = _SEPARATORS[int(rand() * len(_SEPARATORS))]
            return text + separator + pool[int(rand() * len(pool))]
        return text


def _slice(offsets: list[int], hour: int, start_us: int, end_us: int) -> tuple[int, int]:
    """Index range of the hour's offsets whose instants fall in [start_us, end_us)."""
    hour_start = hour * HOUR_US
    low_ms = -(-(start_us - hour_start) // 1000)
    high_ms = -(-(end_us - hour_start) // 1000)
    first = 0 if low_ms <= 0 else bisect_left(offsets, low_ms)
    stop = len(offsets) if high_ms >= HOUR_MS else bisect_left(offsets, high_ms)
    return first, stop


def _external_id(rand: Any, bits: Any) -> str:
    """An id in the integrated system: 3 to 250 characters, in a few common shapes."""
    draw = rand()
    if draw < 0.7:
        return f"wamid.{bits(160):040X}"
    if draw < 0.9:
        return f"crm-{int(rand() * 10_000_000)}"
    if draw < 0.95:
        return f"{bits(12):03x}"
    return (f"sf:{bits(128):032x}" * 8)[:250]


def _long_lengths(rng: random.Random) -> list[int]:
    return [MAX_CONTENT] + [rng.randint(300, MAX_CONTENT) for _ in range(23)]


def _long_text(rng: random.Random, length: int) -> str:
    """A long message (pasted logs, long complaints): pool texts joined, cut to `length`."""
    pool = USER_TEXTS + ASSISTANT_TEXTS + AGENT_TEXTS
    parts: list[str] = []
    size = 0
    while size < length:
        part = rng.choice(pool) + rng.choice(_SEPARATORS)
        parts.append(part)
        size += len(part)
    return "".join(parts)[:length]
