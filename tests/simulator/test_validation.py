from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from simulator.errors import ApiError
from simulator.validation import (
    parse_datetime,
    parse_export_request,
    parse_list_query,
    require_key,
)

NOW = datetime(2024, 6, 1, 12, tzinfo=UTC)
CHAT = "5bece30d-548e-495a-bd95-de40eb9a019a"


def body(**changes: object) -> dict[str, object]:
    return {
        "rangeStart": "2024-05-01T00:00:00Z",
        "rangeEnd": "2024-05-02T00:00:00Z",
        "callbackUrl": "https://archiver.example.com/callbacks/abc/token",
    } | changes


def test_date_times_need_a_time_and_a_zone() -> None:
    assert parse_datetime("2024-05-01T00:00:00Z", "f") == datetime(2024, 5, 1, tzinfo=UTC)
    shifted = parse_datetime("2024-05-01T03:00:00.250+03:00", "f")
    assert shifted == datetime(2024, 5, 1, 0, 0, 0, 250_000, tzinfo=UTC)
    assert shifted.tzinfo == timezone(timedelta(hours=3))
    for bad in ("2024-05-01", "2024-05-01T00:00:00", "2024-13-01T00:00:00Z", 20240501, None):
        with pytest.raises(ApiError) as caught:
            parse_datetime(bad, "rangeStart")
        assert caught.value.status == 400 and "rangeStart" in caught.value.message


def test_a_missing_or_null_range_end_is_now() -> None:
    assert parse_export_request(body(rangeEnd=None), now=NOW, allow_insecure=False).end == NOW
    without = body()
    del without["rangeEnd"]
    assert parse_export_request(without, now=NOW, allow_insecure=False).end == NOW


def test_the_period_may_be_183_days_but_not_more() -> None:
    start = "2024-01-01T00:00:00Z"
    ok = parse_export_request(
        body(rangeStart=start, rangeEnd="2024-07-02T00:00:00Z"), now=NOW, allow_insecure=False
    )
    assert ok.end - ok.start == timedelta(days=183)
    with pytest.raises(ApiError, match="exceeds the maximum of 6 months"):
        parse_export_request(
            body(rangeStart=start, rangeEnd="2024-07-02T00:00:00.001Z"),
            now=NOW,
            allow_insecure=False,
        )


def test_an_empty_period_is_accepted() -> None:
    same = body(rangeEnd="2024-05-01T00:00:00Z")
    request = parse_export_request(same, now=NOW, allow_insecure=False)
    assert request.start == request.end and request.language == "enUs"


@pytest.mark.parametrize(
    ("url", "insecure", "ok"),
    [
        ("https://a.example.com/cb", False, True),
        ("http://a.example.com/cb", False, False),
        ("http://127.0.0.1:8080/cb", True, True),
        ("https://", True, False),
        ("https://a.example.com:99999/cb", True, False),
        ("https://a.example.com/c b", True, False),
        ("mailto:x@example.com", True, False),
    ],
)
def test_callback_urls_must_be_https_unless_insecure_is_allowed(
    url: str, insecure: bool, ok: bool
) -> None:
    if ok:
        parse_export_request(body(callbackUrl=url), now=NOW, allow_insecure=insecure)
    else:
        with pytest.raises(ApiError, match="callbackUrl"):
            parse_export_request(body(callbackUrl=url), now=NOW, allow_insecure=insecure)


def test_list_parameters_may_repeat_use_brackets_or_commas() -> None:
    ticket = "11111111-1111-4111-8111-111111111111"
    query = parse_list_query(
        [
            ("chatId", CHAT),
            ("joins[]", "senders"),
            ("joins", "chat-message-follow-ups"),
            ("ticketIds", f"{ticket},{ticket}"),
            ("pagination[limit]", "1000"),
        ]
    )
    assert query.joins == ("senders", "chat-message-follow-ups")
    assert query.ticket_ids == (ticket, ticket) and query.limit == 1000
    assert parse_list_query([("chatId", CHAT)]).limit == 250
    with pytest.raises(ApiError):
        parse_list_query([("chatId", CHAT), ("chatId", CHAT)])
    with pytest.raises(ApiError):
        parse_list_query([("chatId", CHAT), ("pagination[limit]", "٣")])


def test_the_key_is_the_raw_authorization_header() -> None:
    require_key("k", "k")
    for header in (None, "", "Bearer k", "k "):
        with pytest.raises(ApiError) as caught:
            require_key(header, "k")
        assert caught.value.status == 401
