"""Callback intake against the live service: auth, limits, hostile bodies, raw storage."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from storage.layout import Window
from storage.schema import STREAM
from tests.service import RunningService, running_service

LIMIT = 256 * 1024
WINDOW = Window(datetime(2026, 2, 1, tzinfo=UTC), datetime(2026, 2, 2, tzinfo=UTC))


@pytest.fixture
def service(tmp_path: Path) -> Iterator[RunningService]:
    with running_service(
        tmp_path, max_callback_bytes=LIMIT, body_timeout=timedelta(seconds=1)
    ) as running:
        yield running


def _raw_bodies(service: RunningService) -> list[str]:
    return [info.key for info in service.store.list("_raw/") if info.key.endswith(".body")]


def _wait_state(service: RunningService, window: Window, state: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while True:
        record = service.ledger.window(STREAM, window)
        if record and record.state == state:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"window is {record.state if record else None}, not {state}")
        time.sleep(0.05)


def test_missing_wrong_and_foreign_tokens_get_the_same_404(service: RunningService) -> None:
    mine = service.export_for(WINDOW)
    other = service.export_for(Window(WINDOW.end, WINDOW.end + timedelta(days=1)))
    answers = [
        httpx.post(f"{service.url}/callbacks/{mine.export_id}/{other.token}", content=b"{}"),
        httpx.post(f"{service.url}/callbacks/{mine.export_id}/{'A' * 43}", content=b"{}"),
        httpx.post(f"{service.url}/callbacks/{'f' * 32}/{mine.token}", content=b"{}"),
        httpx.post(f"{service.url}/callbacks/{mine.export_id}", content=b"{}"),
        httpx.post(f"{service.url}/callbacks/..%2F_manifests/{mine.token}", content=b"{}"),
        httpx.post(
            f"{service.url}/callbacks/{mine.export_id}%2F..%2Fx/{mine.token}", content=b"{}"
        ),
    ]
    assert [a.status_code for a in answers] == [404] * 6
    assert answers[0].json() == answers[1].json() == answers[2].json()
    assert _raw_bodies(service) == []


def test_a_body_over_the_limit_is_refused_while_streaming(service: RunningService) -> None:
    attempt = service.export_for(WINDOW)

    def chunks() -> Iterator[bytes]:
        for _ in range(300):
            yield b"x" * 1024

    declared = httpx.post(service.callback_url(attempt), content=b"x" * (LIMIT + 1))
    streamed = httpx.post(service.callback_url(attempt), content=chunks())
    assert (declared.status_code, streamed.status_code) == (413, 413)
    assert _raw_bodies(service) == []


def test_a_body_that_trickles_in_times_out_and_health_stays_up(service: RunningService) -> None:
    attempt = service.export_for(WINDOW)
    health: list[int] = []

    async def trickle() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b" "
            await asyncio.sleep(0.2)

    def probe() -> None:
        for _ in range(5):
            health.append(httpx.get(f"{service.url}/healthz").status_code)
            time.sleep(0.1)

    prober = threading.Thread(target=probe)
    prober.start()

    async def send() -> int:
        async with httpx.AsyncClient() as client:
            response = await client.post(service.callback_url(attempt), content=trickle())
            return response.status_code

    assert asyncio.run(send()) == 408
    prober.join()
    assert health == [200] * 5
    assert _raw_bodies(service) == []


def test_an_accepted_body_is_stored_raw_with_its_headers_before_the_answer(
    service: RunningService,
) -> None:
    attempt = service.export_for(WINDOW)
    body = b"\xff\xfe not utf-8 \x00"
    answer = httpx.post(
        service.callback_url(attempt),
        content=body,
        headers={"content-type": "application/octet-stream", "authorization": "secret"},
    )
    assert answer.json() == {"status": "accepted"}
    [key] = _raw_bodies(service)
    assert key.startswith(f"_raw/{attempt.export_id}/")
    assert service.store.get_bytes(key) == body
    meta = json.loads(service.store.get_bytes(key.removesuffix(".body") + ".json"))
    assert meta["headers"]["content-type"] == "application/octet-stream"
    assert "authorization" not in meta["headers"]
    _wait_state(service, WINDOW, "quarantined")


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000,
        b'{"nothing": "useful"}',
        b"id,chatId,createdAt\n1,2\n3,4,5,6\n",
        b"",
    ],
    ids=["deeply-nested-json", "unknown-object", "ragged-csv", "empty-body"],
)
def test_undecodable_bodies_are_quarantined_with_a_reason_and_kept(
    service: RunningService, body: bytes
) -> None:
    attempt = service.export_for(WINDOW)
    assert httpx.post(service.callback_url(attempt), content=body).status_code == 200
    _wait_state(service, WINDOW, "quarantined")
    record = service.ledger.window(STREAM, WINDOW)
    assert record is not None and record.reason
    assert len(_raw_bodies(service)) == 1
    assert httpx.get(f"{service.url}/healthz").status_code == 200


def test_a_download_link_to_a_metadata_address_is_refused_and_quarantined(
    tmp_path: Path,
) -> None:
    with running_service(tmp_path, download_allow_private=False) as service:
        attempt = service.export_for(WINDOW)
        notice = {"status": "completed", "url": "http://169.254.169.254/latest/meta-data/"}
        assert httpx.post(service.callback_url(attempt), json=notice).status_code == 200
        _wait_state(service, WINDOW, "quarantined")
        record = service.ledger.window(STREAM, WINDOW)
        assert record is not None and "refused" in (record.reason or "")


def test_readyz_and_openapi_describe_the_service(service: RunningService) -> None:
    assert httpx.get(f"{service.url}/readyz").json() == {"status": "ready"}
    document = httpx.get(f"{service.url}/openapi.json").json()
    assert "/callbacks/{export_id}/{token}" in document["paths"]
    metrics = httpx.get(f"{service.url}/metrics").text
    assert "archiver_windows" in metrics
