"""The one redaction function: the API key and callback tokens become `***`, and nothing else
that merely looks like them (a part's name) is touched."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from urllib.parse import quote

import pytest

from storage.redaction import MASK, add_secret, add_token, forget_all, redact, redact_value

KEY = "sk-live-abc123"
TOKEN = "tok_ABCdef0123456789ABCdef0123456789ABCdef012"
EXPORT = "0123456789abcdef0123456789abcdef"


@pytest.fixture(autouse=True)
def _registered() -> Iterator[None]:
    add_secret(KEY)
    add_token(TOKEN)
    yield
    forget_all()


def test_the_key_and_a_registered_token_are_masked_wherever_they_appear() -> None:
    text = f"authorization='{KEY}' token {TOKEN}"
    assert redact(text) == f"authorization='{MASK}' token {MASK}"


def test_an_unknown_token_is_masked_as_the_last_segment_of_a_callback_url() -> None:
    plain = f"POST https://x.example/callbacks/{EXPORT}/Zm9vYmFy_-42 failed"
    encoded = f"callbackUrl=https%3A%2F%2Fx%2Fcallbacks%2F{EXPORT}%2FZm9vYmFy_-42&lang=enUs"
    assert redact(plain) == f"POST https://x.example/callbacks/{EXPORT}/{MASK} failed"
    assert (
        redact(encoded) == f"callbackUrl=https%3A%2F%2Fx%2Fcallbacks%2F{EXPORT}%2F{MASK}&lang=enUs"
    )


def test_names_of_the_archive_are_left_alone() -> None:
    text = "part-20260101T000000Z-20260102T000000Z-0000.parquet /callbacks/{export_id}/{token}"
    assert redact(text) == text


def test_json_values_are_redacted_inside_lists_and_dicts() -> None:
    assert redact_value({"reason": [f"key {KEY}"], KEY: 1}) == {"reason": [f"key {MASK}"], MASK: 1}


def test_a_token_glued_to_other_url_safe_text_is_still_masked() -> None:
    text = f"id=abc{TOKEN}XYZ-_9 and {TOKEN}{TOKEN}"
    assert redact(text) == f"id=abc{MASK}XYZ-_9 and {MASK}{MASK}"


def test_every_one_of_thousands_of_tokens_of_several_lengths_is_masked() -> None:
    tokens = [secrets.token_urlsafe(16 + index % 3 * 8) for index in range(3000)]
    for token in tokens:
        add_token(token)
    text = " ".join(f"{EXPORT}/{token}" for token in tokens[::7])
    assert redact(text) == " ".join(f"{EXPORT}/{MASK}" for _ in tokens[::7])


def test_a_token_that_is_not_url_safe_is_masked_literally() -> None:
    odd = "token with spaces/and+plus"
    add_token(odd)
    assert redact(f"sent {odd}!") == f"sent {MASK}!"
    assert redact(f"q={quote(odd, safe='')}") == f"q={MASK}"


def test_the_oldest_tokens_are_forgotten_past_the_limit_and_the_newest_kept() -> None:
    oldest = "o" * 24
    add_token(oldest)
    newest = [secrets.token_urlsafe(32) for _ in range(10_000)]
    for token in newest:
        add_token(token)
    assert redact(f"a {oldest} b {newest[0]} c {newest[-1]}") == f"a {oldest} b {MASK} c {MASK}"
