from __future__ import annotations

import csv
import gzip
import io
import json
import time
import zipfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from simulator.corpus import MessageCorpus
from simulator.files import CSV_LABELS, FIELDS
from tests.simulator.support import API_KEY, BASE_CONFIG, HTTP, CallbackTarget, export, state

START, END = "2024-03-01T00:00:00Z", "2024-03-01T06:00:00Z"
EXPECTED = list(
    MessageCorpus(BASE_CONFIG.seed, BASE_CONFIG.messages_per_day).between(
        datetime.fromisoformat(START), datetime.fromisoformat(END)
    )
)


def assert_error_shape(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status
    body: dict[str, Any] = response.json()
    assert set(body) == {"code", "message", "name", "cta", "feedback"}
    assert set(body["cta"]) == {"type", "url"}
    assert set(body["feedback"]) == {"enUs", "esEs", "ptBr"}
    return body


def download(url: str) -> bytes:
    response = HTTP.get(url)
    assert response.status_code == 200
    return response.content


def from_csv(data: bytes, header: tuple[str, ...]) -> list[dict[str, Any]]:
    rows = list(csv.reader(io.StringIO(data.decode(), newline="")))
    assert tuple(rows[0]) == header
    return [
        {f: (v if v != "" else None) for f, v in zip(FIELDS, row, strict=True)} for row in rows[1:]
    ]


def ndjson(data: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in data.decode().splitlines()]


@pytest.mark.parametrize("key", [None, "wrong-key", f"Bearer {API_KEY}"])
def test_export_without_the_right_key_is_401(
    sim: str, target: CallbackTarget, key: str | None
) -> None:
    headers = {} if key is None else {"authorization": key}
    body = {"rangeStart": START, "rangeEnd": END, "callbackUrl": target.callback_url()}
    response = HTTP.post(f"{sim}/api/v1/chat-messages/export", json=body, headers=headers)
    assert assert_error_shape(response, 401)["code"] == "UNAUTHORIZED"


@pytest.mark.parametrize(
    "changes",
    [
        {"rangeStart": None},
        {"rangeStart": "yesterday"},
        {"rangeStart": "2024-03-01"},
        {"rangeStart": "2024-03-01T00:00:00"},
        {"rangeEnd": "2024-02-29T23:59:59Z"},
        {"callbackUrl": None},
        {"callbackUrl": "not a url"},
        {"callbackUrl": "ftp://example.com/cb"},
        {"language": "frFr"},
    ],
)
def test_export_with_an_invalid_field_is_400(
    sim: str, target: CallbackTarget, changes: dict[str, Any]
) -> None:
    body = {"rangeStart": START, "rangeEnd": END, "callbackUrl": target.callback_url()} | changes
    response = HTTP.post(
        f"{sim}/api/v1/chat-messages/export", json=body, headers={"authorization": API_KEY}
    )
    assert assert_error_shape(response, 400)["name"] == "BadRequestError"


def test_export_body_that_is_not_json_is_400(sim: str) -> None:
    response = HTTP.post(
        f"{sim}/api/v1/chat-messages/export", content=b"{", headers={"authorization": API_KEY}
    )
    assert_error_shape(response, 400)


def test_a_period_over_six_months_is_400_with_the_documented_message(
    sim: str, target: CallbackTarget
) -> None:
    response = export(sim, target.callback_url(), "2024-01-01T00:00:00Z", "2024-07-02T00:00:01Z")
    body = assert_error_shape(response, 400)
    assert body["message"] == "The export period exceeds the maximum of 6 months."
    assert body["feedback"]["ptBr"] == "O período de exportação excede o máximo de 6 meses."
    accepted = export(sim, target.callback_url(), "2024-01-01T00:00:00Z", "2024-07-02T00:00:00Z")
    assert accepted.status_code == 200


def test_http_callbacks_are_refused_unless_insecure_callbacks_are_allowed(
    start_simulator: Callable[..., str], target: CallbackTarget
) -> None:
    strict = start_simulator(allow_insecure_callbacks=False, drop_callbacks=True)
    response = export(strict, target.callback_url())
    assert "HTTPS" in assert_error_shape(response, 400)["message"]
    assert export(strict, "https://archiver.example.com/callbacks/1/t").status_code == 200


def test_export_answers_the_documented_message_and_no_job_id(
    sim: str, target: CallbackTarget
) -> None:
    response = export(sim, target.callback_url())
    assert response.status_code == 200
    assert response.json() == {
        "message": "Export started. A POST will be made to callbackUrl when ready."
    }


def test_happy_path_callback_links_a_gzip_ndjson_file_equal_to_the_corpus(
    sim: str, target: CallbackTarget
) -> None:
    assert export(sim, target.callback_url("w1")).status_code == 200
    [callback] = target.wait_for(1)
    assert callback.path.endswith("/w1")
    notice = json.loads(callback.body)
    assert notice["status"] == "completed"
    assert notice["url"].startswith(f"{sim}/files/") and notice["url"].endswith(".ndjson.gz")
    assert ndjson(gzip.decompress(download(notice["url"]))) == EXPECTED
    assert EXPECTED


@pytest.mark.parametrize(
    ("shape", "decode"),
    [
        ("link-json", lambda data: json.loads(data)),
        ("link-csv", lambda data: from_csv(data, CSV_LABELS["enUs"])),
        (
            "link-zip-ndjson",
            lambda data: ndjson(zipfile.ZipFile(io.BytesIO(data)).read("chat-messages.ndjson")),
        ),
    ],
)
def test_every_link_shape_carries_the_corpus_records(
    start_simulator: Callable[..., str],
    target: CallbackTarget,
    shape: str,
    decode: Callable[[bytes], list[dict[str, Any]]],
) -> None:
    sim = start_simulator(callback_shape=shape)
    export(sim, target.callback_url())
    notice = json.loads(target.wait_for(1)[0].body)
    assert decode(download(notice["url"])) == EXPECTED


def test_inline_shapes_carry_the_records_in_the_callback_body(
    start_simulator: Callable[..., str], target: CallbackTarget
) -> None:
    json_sim = start_simulator(callback_shape="inline-json")
    ndjson_sim = start_simulator(callback_shape="inline-ndjson")
    export(json_sim, target.callback_url("json"))
    [first] = target.wait_for(1)
    export(ndjson_sim, target.callback_url("ndjson"))
    second = target.wait_for(2)[1]
    assert json.loads(first.body) == {"status": "completed", "data": EXPECTED}
    assert second.headers["content-type"] == "application/x-ndjson"
    assert ndjson(second.body) == EXPECTED


def test_csv_headers_follow_the_requested_language_or_use_field_names(
    start_simulator: Callable[..., str], target: CallbackTarget
) -> None:
    labelled = start_simulator(callback_shape="link-csv")
    export(labelled, target.callback_url(), language="esEs")
    notice = json.loads(target.wait_for(1)[0].body)
    assert from_csv(download(notice["url"]), CSV_LABELS["esEs"]) == EXPECTED
    fields = start_simulator(callback_shape="link-csv", csv_header="fields")
    export(fields, target.callback_url(), language="ptBr")
    notice = json.loads(target.wait_for(2)[1].body)
    assert from_csv(download(notice["url"]), FIELDS) == EXPECTED


def test_an_empty_range_exports_an_empty_file(
    start_simulator: Callable[..., str], target: CallbackTarget
) -> None:
    sim = start_simulator(messages_per_day=0)
    export(sim, target.callback_url())
    notice = json.loads(target.wait_for(1)[0].body)
    assert gzip.decompress(download(notice["url"])) == b""


def test_links_use_the_public_url_and_expire_after_link_ttl(
    start_simulator: Callable[..., str], target: CallbackTarget
) -> None:
    sim = start_simulator(link_ttl=0.3)
    export(sim, target.callback_url())
    url = json.loads(target.wait_for(1)[0].body)["url"]
    assert HTTP.get(url).status_code == 200
    time.sleep(0.5)
    assert HTTP.get(url).status_code == 410
    assert HTTP.get(f"{sim}/files/nothing.ndjson.gz").status_code == 404
    public = start_simulator(public_url="https://files.example.com/")
    export(public, target.callback_url())
    assert json.loads(target.wait_for(2)[1].body)["url"].startswith(
        "https://files.example.com/files/"
    )


def test_state_counts_export_requests_per_range_with_the_status_answered(
    sim: str, target: CallbackTarget
) -> None:
    export(sim, target.callback_url(), "2024-03-01T00:00:00+00:00", "2024-03-01T06:00:00Z")
    export(sim, target.callback_url(), key="wrong")
    export(sim, target.callback_url(), "2024-03-02T00:00:00Z", "2024-03-02T01:00:00Z")
    target.wait_for(2)
    snapshot = state(sim)
    assert snapshot["export_requests_total"] == 3
    assert snapshot["export_requests_accepted"] == 2
    assert snapshot["export_requests_by_range"] == {
        "2024-03-01T00:00:00.000Z/2024-03-01T06:00:00.000Z": 2,
        "2024-03-02T00:00:00.000Z/2024-03-02T01:00:00.000Z": 1,
    }
    assert [r["status"] for r in snapshot["export_requests"]] == [200, 401, 200]
    first = snapshot["export_requests"][0]
    assert first["callbackUrl"] == target.callback_url() and first["language"] == "enUs"


def test_a_missing_range_end_means_now(sim: str, target: CallbackTarget) -> None:
    before = datetime.now(UTC)
    start = (before - timedelta(hours=1)).isoformat()
    assert export(sim, target.callback_url(), start, None).status_code == 200
    [key] = state(sim)["export_requests_by_range"]
    end = datetime.fromisoformat(key.split("/")[1])
    assert before.replace(microsecond=0) <= end <= datetime.now(UTC)


def chat_messages(sim: str, key: str = API_KEY, **params: Any) -> httpx.Response:
    return HTTP.get(f"{sim}/api/v1/chat-messages", params=params, headers={"authorization": key})


def test_get_chat_messages_lists_the_exported_messages_of_one_chat(
    sim: str, target: CallbackTarget
) -> None:
    chat_id = EXPECTED[0]["chatId"]
    assert chat_messages(sim, chatId=chat_id).json() == []
    export(sim, target.callback_url())
    in_chat = [m for m in EXPECTED if m["chatId"] == chat_id]
    assert chat_messages(sim, chatId=chat_id).json() == in_chat
    assert chat_messages(sim, chatId=chat_id, **{"pagination[limit]": "2"}).json() == in_chat[:2]
    joined = chat_messages(sim, chatId=chat_id, joins="senders").json()
    assert joined[0]["sender"]["id"] == in_chat[0]["senderId"]


def test_get_chat_messages_refuses_bad_queries(sim: str) -> None:
    chat_id = EXPECTED[0]["chatId"]
    assert_error_shape(chat_messages(sim, key="nope", chatId=chat_id), 401)
    assert_error_shape(chat_messages(sim, chatId="not-a-uuid"), 400)
    assert_error_shape(chat_messages(sim), 400)
    for limit in ("0", "1001", "ten"):
        assert_error_shape(chat_messages(sim, chatId=chat_id, **{"pagination[limit]": limit}), 400)
    assert_error_shape(chat_messages(sim, chatId=chat_id, joins="everything"), 400)
    unknown = chat_messages(sim, chatId="00000000-0000-4000-8000-000000000000")
    assert assert_error_shape(unknown, 404)["message"] == "Chat not found."


def new_message(**changes: Any) -> dict[str, Any]:
    return {
        "chatId": "11111111-1111-4111-8111-111111111111",
        "chatThreadId": None,
        "content": 'Olá, "mundo" 👋\nsegunda linha',
        "externalId": None,
        "senderId": "22222222-2222-4222-8222-222222222222",
        "role": "user",
    } | changes


def post_message(sim: str, body: dict[str, Any], key: str = API_KEY) -> httpx.Response:
    return HTTP.post(f"{sim}/api/v1/chat-messages", json=body, headers={"authorization": key})


def test_post_chat_message_creates_a_message_that_get_and_later_exports_return(
    sim: str, target: CallbackTarget
) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    response = post_message(sim, new_message(externalId="abc"))
    assert response.status_code == 200
    created = response.json()
    assert set(created) == set(FIELDS)
    assert created["content"] == new_message()["content"] and created["externalId"] == "abc"
    assert created["rawContent"] is None and created["createdAt"] == created["updatedAt"]
    listed = chat_messages(sim, chatId=created["chatId"]).json()
    assert listed == [created]
    export(sim, target.callback_url(), before.isoformat(), datetime.now(UTC).isoformat())
    notice = json.loads(target.wait_for(1)[0].body)
    assert created in ndjson(gzip.decompress(download(notice["url"])))


@pytest.mark.parametrize(
    "changes",
    [
        {"chatId": "nope"},
        {"chatThreadId": "nope"},
        {"content": "x" * 4001},
        {"externalId": "ab"},
        {"externalId": "x" * 251},
        {"senderId": None},
        {"role": "robot"},
    ],
)
def test_post_chat_message_validates_the_documented_fields(
    sim: str, changes: dict[str, Any]
) -> None:
    assert_error_shape(post_message(sim, new_message(**changes)), 400)


def test_post_chat_message_requires_every_field_and_the_key(sim: str) -> None:
    body = new_message()
    del body["externalId"]
    assert_error_shape(post_message(sim, body), 400)
    assert_error_shape(post_message(sim, new_message(), key="nope"), 401)
    assert (
        post_message(sim, new_message(content="x" * 4000, externalId="x" * 250)).status_code == 200
    )
