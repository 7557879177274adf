"""A service killed after answering 200 and before its commit (`serve` as a real subprocess,
SIGKILL like an OOM kill) commits the window on restart with exact rows and no stale parts."""

from __future__ import annotations

import asyncio
import io
import json
import threading
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from simulator.corpus import MessageCorpus
from storage.layout import Window, manifest_key, part_prefix_for_window
from storage.ledger import ExportAttempt, Ledger
from storage.objectstore import ObjectStore
from storage.schema import STREAM
from storage.stores import S3Options, open_store
from tests.harness import (
    ServiceProcess,
    archived_as_api_records,
    read_archive,
    service_env,
    wait_for_states,
)
from tests.servers import free_port, serve_in_thread

WINDOW = Window(datetime(2026, 2, 1, tzinfo=UTC), datetime(2026, 2, 2, tzinfo=UTC))
MESSAGES = list(MessageCorpus(seed=29, messages_per_day=400).between(WINDOW.start, WINDOW.end))
MEMBERS = 4
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "upgrade"}


class ManifestHoldingProxy:
    """A plain HTTP proxy in front of the S3 server that can hold manifest uploads.

    `store_held` False: the held upload is never forwarded (killed after the last part, before
    the commit marker). True: it is stored but not answered (killed after the manifest, before
    the ledger records the commit).
    """

    def __init__(
        self,
        upstream: str,
        *,
        store_held: bool,
        path_part: str = "/_manifests/",
        suffix: str = "",
    ) -> None:
        self.upstream = upstream
        self.store_held = store_held
        self.path_part = path_part
        self.suffix = suffix
        self.hold = True
        self.held = threading.Event()
        self.released = threading.Event()

    def app(self) -> Starlette:
        async def forward(request: Request) -> Response:
            body = await request.body()
            path = request.url.path
            if (
                self.hold
                and request.method == "PUT"
                and self.path_part in path
                and path.endswith(self.suffix)
            ):
                if self.store_held:
                    await self._send(request, body)
                self.held.set()
                while not self.released.is_set():
                    await asyncio.sleep(0.05)
                return Response(status_code=503)
            return await self._send(request, body)

        methods = ["GET", "HEAD", "PUT", "POST", "DELETE"]
        return Starlette(routes=[Route("/{path:path}", forward, methods=methods)])

    async def _send(self, request: Request, body: bytes) -> Response:
        target = self.upstream + request.scope["raw_path"].decode()
        if request.url.query:
            target += "?" + request.url.query
        headers = [
            (name, value)
            for name, value in request.headers.items()
            if name not in _HOP_BY_HOP and name != "content-length"
        ]
        async with httpx.AsyncClient(timeout=60) as client:
            answer = await client.request(request.method, target, headers=headers, content=body)
        kept = {
            name: value
            for name, value in answer.headers.items()
            if name not in _HOP_BY_HOP and name != "content-encoding"
        }
        return Response(answer.content, status_code=answer.status_code, headers=kept)


@pytest.fixture(params=[False, True], ids=["before-manifest", "after-manifest"])
def proxy(
    s3_endpoint: str, request: pytest.FixtureRequest
) -> Iterator[tuple[ManifestHoldingProxy, str]]:
    holding = ManifestHoldingProxy(s3_endpoint, store_held=request.param)
    with serve_in_thread(holding.app()) as url:
        try:
            yield holding, url
        finally:
            holding.released.set()


def _zip_body() -> bytes:
    """Several members, so a small ARCHIVER_PART_BYTES makes several parts."""
    buffer = io.BytesIO()
    share = -(-len(MESSAGES) // MEMBERS)
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for index in range(MEMBERS):
            chunk = MESSAGES[index * share : (index + 1) * share]
            archive.writestr(f"export-{index}.ndjson", "".join(json.dumps(m) + "\n" for m in chunk))
    return buffer.getvalue()


def _export(ledger: Ledger) -> ExportAttempt:
    """The window requested, as the scheduler would have done before the crash."""
    ledger.plan(STREAM, [WINDOW])
    ledger.force_due(STREAM, [WINDOW], include_committed=True, now=datetime.now(UTC))
    [attempt] = ledger.claim_due(
        STREAM, datetime.now(UTC), limit=1, callback_timeout=timedelta(hours=6), max_attempts=5
    )
    return attempt


def _window_parts(store: ObjectStore) -> list[str]:
    return [info.key for info in store.list(part_prefix_for_window(WINDOW.start.date(), WINDOW))]


def test_a_service_killed_between_its_200_and_the_commit_commits_exactly_on_restart(
    proxy: tuple[ManifestHoldingProxy, str], s3_endpoint: str, s3_bucket: str, tmp_path: Path
) -> None:
    holding, proxy_url = proxy
    env = service_env(
        api_url="http://127.0.0.1:9",
        ledger_url=f"sqlite:///{tmp_path}/ledger.db",
        storage_url=f"s3://{s3_bucket}/lake",
        port=free_port(),
        s3_endpoint=proxy_url,
        ARCHIVER_LEASE="3s",
        ARCHIVER_PART_BYTES="1024",
        ARCHIVER_ROW_GROUP_BYTES="16384",
    )
    store = open_store(f"s3://{s3_bucket}/lake", S3Options(endpoint_url=s3_endpoint))
    ledger = Ledger.open(env["ARCHIVER_LEDGER_URL"])
    service = ServiceProcess(env, tmp_path / "serve.log").start()
    try:
        attempt = _export(ledger)
        callback = f"{service.url}/callbacks/{attempt.export_id}/{attempt.token}"
        assert httpx.post(callback, content=_zip_body()).json() == {"status": "accepted"}
        assert holding.held.wait(30), service.logs()
        service.kill()
        holding.released.set()

        before_restart = _window_parts(store)
        assert len(before_restart) >= 2, before_restart
        if holding.store_held:
            previous = json.loads(store.get_bytes(manifest_key(WINDOW)))
            assert [part["key"] for part in previous["parts"]] == before_restart
        else:
            assert store.size(manifest_key(WINDOW)) is None
        record = ledger.window(STREAM, WINDOW)
        assert record is not None and record.state == "received"

        holding.hold = False
        # Default part sizes from now on: one part, so the parts beyond it are stale.
        smaller = ("ARCHIVER_PART_BYTES", "ARCHIVER_ROW_GROUP_BYTES")
        service.env = {key: value for key, value in env.items() if key not in smaller}
        service.start()
        [record] = wait_for_states(ledger, 1, timeout=60)
    finally:
        service.kill()
        ledger.close()

    manifest: dict[str, Any] = json.loads(store.get_bytes(manifest_key(WINDOW)))
    listed = [part["key"] for part in manifest["parts"]]
    assert _window_parts(store) == sorted(listed)
    assert len(listed) < len(before_restart)
    assert (record.rows, manifest["rows"]) == (len(MESSAGES), len(MESSAGES))
    assert archived_as_api_records(read_archive(store)) == {m["id"]: m for m in MESSAGES}
    raw = [i.key for i in store.list(f"_raw/{attempt.export_id}/") if i.key.endswith(".body")]
    assert len(raw) == 1
