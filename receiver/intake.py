"""Callback intake (DESIGN §3.3): authenticate, bound, store raw, then answer.

The raw body reaches the object store before the 200, so an answered callback can always be
decoded again (`replay`), whatever happens to this process afterwards.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import re
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

from receiver.metrics import CALLBACK_BYTES, CALLBACKS
from storage.errors import UserError
from storage.layout import raw_body_key, raw_meta_key
from storage.ledger import Ledger
from storage.objectstore import ObjectStore

log = logging.getLogger("chat_archiver.receiver.intake")

_EXPORT_ID = re.compile(r"^[0-9a-f]{32}$")
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{16,128}$")
_PRIVATE_HEADERS = {"authorization", "cookie", "proxy-authorization", "x-api-key"}
NOT_FOUND = {"error": "not_found", "detail": "no such callback"}


class BodyTooLarge(UserError):
    """The sender's body is over the limit: its mistake, answered 413."""


class BodyTooSlow(UserError):
    """The sender's body did not arrive in time: answered 408."""


@dataclass(frozen=True)
class IntakeLimits:
    max_bytes: int = 64 * 1024 * 1024
    body_timeout: float = 60.0
    idle_timeout: float = 15.0


def token_matches(token: str, token_sha256: str) -> bool:
    digest = hashlib.sha256(token.encode()).hexdigest()
    return hmac.compare_digest(digest, token_sha256)


def kept_headers(headers: dict[str, str]) -> dict[str, str]:
    return {name: value for name, value in headers.items() if name not in _PRIVATE_HEADERS}


class Intake:
    def __init__(
        self,
        ledger: Ledger,
        store: ObjectStore,
        limits: IntakeLimits,
        *,
        on_accepted: Callable[[], None] = lambda: None,
        tmp_dir: Path | None = None,
    ) -> None:
        self._ledger = ledger
        self._store = store
        self._limits = limits
        self._on_accepted = on_accepted
        self._tmp_dir = tmp_dir

    async def handle(self, request: Request) -> Response:
        export_id = request.path_params["export_id"]
        token = request.path_params["token"]
        if not (_EXPORT_ID.match(export_id) and _TOKEN.match(token)):
            CALLBACKS.labels("not_found").inc()
            return JSONResponse(NOT_FOUND, status_code=404)
        export = await asyncio.to_thread(self._ledger.find_export, export_id)
        if export is None or not token_matches(token, export.token_sha256):
            CALLBACKS.labels("not_found").inc()
            log.warning("callback_not_found", extra={"export_id": export_id})
            return JSONResponse(NOT_FOUND, status_code=404)

        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > self._limits.max_bytes:
            return self._too_large(export_id)

        with tempfile.NamedTemporaryFile(dir=self._tmp_dir, prefix="callback-") as spool:
            try:
                size, sha256 = await self._spool(request, spool)
            except BodyTooLarge:
                return self._too_large(export_id)
            except BodyTooSlow:
                CALLBACKS.labels("timeout").inc()
                log.warning("callback_timeout", extra={"export_id": export_id})
                return JSONResponse(
                    {"error": "timeout", "detail": "the body did not arrive in time"},
                    status_code=408,
                )
            except ClientDisconnect:
                log.warning("callback_disconnected", extra={"export_id": export_id})
                return Response(status_code=400)
            received_at = datetime.now(UTC)
            callback_id = uuid.uuid4().hex
            body_key = raw_body_key(export_id, received_at, callback_id)
            meta = {
                "export_id": export_id,
                "callback_id": callback_id,
                "received_at": received_at.isoformat(),
                "window_start": export.window.start.isoformat(),
                "window_end": export.window.end.isoformat(),
                "attempt": export.attempt,
                "bytes": size,
                "sha256": sha256,
                "client": request.client.host if request.client else None,
                "headers": kept_headers(dict(request.headers)),
            }
            try:
                await asyncio.to_thread(self._store_raw, Path(spool.name), body_key, meta)
                outcome = await asyncio.to_thread(
                    self._ledger.record_callback,
                    export_id=export_id,
                    callback_id=callback_id,
                    received_at=received_at,
                    raw_key=body_key,
                    body_sha256=sha256,
                    size=size,
                )
            except Exception as error:  # noqa: BLE001 - any storage failure must become a 503
                CALLBACKS.labels("store_error").inc()
                log.error(
                    "callback_store_failed",
                    extra={"export_id": export_id, "reason": f"{type(error).__name__}: {error}"},
                )
                return JSONResponse(
                    {"error": "unavailable", "detail": "could not store the callback; retry"},
                    status_code=503,
                )
        CALLBACKS.labels(outcome).inc()
        CALLBACK_BYTES.inc(size)
        log.info(
            "callback_stored",
            extra={
                "export_id": export_id,
                "callback_id": callback_id,
                "bytes": size,
                "outcome": outcome,
                "window": str(export.window),
            },
        )
        if outcome == "accepted":
            self._on_accepted()
        return JSONResponse({"status": outcome})

    def _too_large(self, export_id: str) -> Response:
        CALLBACKS.labels("too_large").inc()
        log.warning("callback_too_large", extra={"export_id": export_id})
        return JSONResponse(
            {"error": "too_large", "detail": f"body over {self._limits.max_bytes} bytes"},
            status_code=413,
        )

    async def _spool(
        self, request: Request, spool: tempfile._TemporaryFileWrapper[bytes]
    ) -> tuple[int, str]:
        """Streams the body to disk, enforcing the size cap and the time limits as it goes."""
        digest = hashlib.sha256()
        size = 0
        deadline = time.monotonic() + self._limits.body_timeout
        chunks = request.stream().__aiter__()
        while True:
            remaining = min(deadline - time.monotonic(), self._limits.idle_timeout)
            if remaining <= 0:
                raise BodyTooSlow()
            try:
                chunk = await asyncio.wait_for(chunks.__anext__(), timeout=remaining)
            except StopAsyncIteration:
                break
            except TimeoutError:
                raise BodyTooSlow() from None
            size += len(chunk)
            if size > self._limits.max_bytes:
                raise BodyTooLarge()
            digest.update(chunk)
            spool.write(chunk)
        spool.flush()
        return size, digest.hexdigest()

    def _store_raw(self, body: Path, body_key: str, meta: dict[str, object]) -> None:
        self._store.put_file(body_key, body)
        self._store.put_bytes(raw_meta_key(body_key), json.dumps(meta, indent=1).encode())
