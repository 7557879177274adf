"""Callback intake: authenticate, bound, store raw, then answer.

The raw body reaches the object store before the 200, so an answered callback can always be
decoded again (`replay`), whatever happens to this process afterwards. Every wait on the ledger
and the object store runs on that dependency's own lane with a timeout, and any failure to look
up or store a callback is answered 503 (the platform retries), never 500 and never a hang.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import re
import time
import uuid
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

from receiver.callback_body import CallbackBody
from receiver.lanes import Lane
from receiver.metrics import CALLBACK_BYTES, CALLBACKS
from receiver.recorder import CallbackRecorder
from storage.errors import ErrorKind, UserError, kind_of, one_line
from storage.layout import raw_body_key, raw_meta_key
from storage.ledger import CallbackReceipt, Ledger
from storage.objectstore import ObjectStore

log = logging.getLogger("chat_archiver.receiver.intake")

T = TypeVar("T")

_EXPORT_ID = re.compile(r"^[0-9a-f]{32}$")
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{16,128}$")
# Raw metadata keeps only these headers (and the platform's own request ids, below): anything
# else may carry a credential (x-amz-security-token, x-auth-token, signatures, cookies).
_KEPT_HEADERS = frozenset({"content-type", "content-length", "content-encoding", "user-agent"})
_REQUEST_ID_HEADER = re.compile(r"^x-(?:[a-z0-9]+-)*(?:request|correlation|trace|delivery)-id$")
_MAX_HEADER_VALUE = 512
NOT_FOUND = {"error": "not_found", "detail": "no such callback"}
RETRY_AFTER_SECONDS = 5
# Calls that may wait for a lane's thread: a burst of callbacks queues (each within its own
# timeout); only a dependency that stops answering fills it, and then callbacks get 503 at once.
INTAKE_QUEUE = 256


class BodyTooLarge(UserError):
    """The sender's body is over the limit: its mistake, answered 413."""


class BodyTooSlow(UserError):
    """The sender's body did not arrive in time: answered 408."""


@dataclass(frozen=True)
class IntakeLimits:
    max_bytes: int = 64 * 1024 * 1024
    body_timeout: float = 60.0
    idle_timeout: float = 15.0
    ledger_timeout: float = 5.0
    # Storing the raw body: a fixed allowance plus time for the bytes at a slow link's pace.
    store_timeout: float = 10.0
    store_bytes_per_second: float = 4 * 1024 * 1024

    def store_deadline(self, size: int) -> float:
        return self.store_timeout + size / self.store_bytes_per_second


@dataclass(frozen=True)
class IntakeLanes:
    """Where intake's blocking calls run: lanes per dependency, apart from the worker's."""

    ledger: Lane
    store: Lane
    # Recording callbacks, one group at a time (receiver/recorder.py): on a thread of its own,
    # so that look-ups do not queue behind a group being written.
    record: Lane

    @classmethod
    def default(cls, *, local_ledger: bool = False) -> IntakeLanes:
        # A local ledger (SQLite) answers with this process's CPU, under the GIL, one writer at a
        # time: threads past two only queue for the GIL (404 p99 at 50 clients ~99 -> ~83 ms,
        # +12% answers a second). A networked one (Postgres) waits on round trips that more
        # threads overlap.
        ledger_threads = 2 if local_ledger else 8
        return cls(
            Lane("intake-ledger", ledger_threads, INTAKE_QUEUE),
            Lane("intake-store", 8, INTAKE_QUEUE),
            Lane("intake-record", 1),
        )


def token_matches(token: str, token_sha256: str) -> bool:
    digest = hashlib.sha256(token.encode()).hexdigest()
    return hmac.compare_digest(digest, token_sha256)


def kept_headers(headers: dict[str, str]) -> dict[str, str]:
    """The headers raw metadata keeps: an allow-list, so no credential is ever stored."""
    kept = {}
    for name, value in headers.items():
        lowered = name.lower()
        if lowered in _KEPT_HEADERS or _REQUEST_ID_HEADER.match(lowered):
            kept[lowered] = value[:_MAX_HEADER_VALUE]
    return kept


class _Unavailable(Exception):
    """Looking up or storing the callback failed; `dependency` names what failed."""

    def __init__(self, dependency: str, error: BaseException) -> None:
        super().__init__(f"{type(error).__name__}: {one_line(error)}")
        self.dependency = dependency
        self.kind = kind_of(error)


class Intake:
    def __init__(
        self,
        ledger: Ledger,
        store: ObjectStore,
        limits: IntakeLimits,
        *,
        lanes: IntakeLanes | None = None,
        on_accepted: Callable[[], None] = lambda: None,
        tmp_dir: Path | None = None,
    ) -> None:
        self._ledger = ledger
        self._store = store
        self._limits = limits
        self._lanes = lanes or IntakeLanes.default()
        self._on_accepted = on_accepted
        self._tmp_dir = tmp_dir
        self._recorder = CallbackRecorder(ledger, self._lanes.record, limits.ledger_timeout)

    async def handle(self, request: Request) -> Response:
        export_id = request.path_params["export_id"]
        token = request.path_params["token"]
        if not (_EXPORT_ID.match(export_id) and _TOKEN.match(token)):
            CALLBACKS.labels("not_found").inc()
            return JSONResponse(NOT_FOUND, status_code=404)
        try:
            return await self._handle(request, export_id, token)
        except _Unavailable as failure:
            if failure.kind is ErrorKind.USER and failure.dependency == "ledger":
                # The export vanished between the look-up and the record: no such callback.
                CALLBACKS.labels("not_found").inc()
                return JSONResponse(NOT_FOUND, status_code=404)
            return self._unavailable(export_id, failure)

    async def _handle(self, request: Request, export_id: str, token: str) -> Response:
        export = await self._on_ledger(self._ledger.find_export, export_id)
        if export is None or not token_matches(token, export.token_sha256):
            CALLBACKS.labels("not_found").inc()
            log.warning("callback_not_found", extra={"export_id": export_id})
            return JSONResponse(NOT_FOUND, status_code=404)

        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > self._limits.max_bytes:
            return self._too_large(export_id)

        with closing(CallbackBody(self._tmp_dir)) as body:
            try:
                size, sha256 = await self._receive(request, body)
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
            except OSError as error:  # ENOSPC, EIO: the spool disk a large body went to
                raise _Unavailable("spool", error) from error
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
            # The body and its metadata go up at once: two requests, the wait of one.
            deadline = self._limits.store_deadline(size)
            meta_bytes = json.dumps(meta, indent=1).encode()
            writes = [
                self._lanes.store.run(deadline, body.store, self._store, body_key),
                self._lanes.store.run(
                    deadline, self._store.put_bytes, raw_meta_key(body_key), meta_bytes
                ),
            ]
            for done in await asyncio.gather(*writes, return_exceptions=True):
                if isinstance(done, Exception):
                    raise _Unavailable("object store", done) from done
                if isinstance(done, BaseException):
                    raise done
        receipt = CallbackReceipt(export_id, callback_id, received_at, body_key, sha256, size)
        try:
            outcome = await self._recorder.record(receipt)
        except Exception as error:  # whatever the ledger raises, the platform gets 503
            raise _Unavailable("ledger", error) from error
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

    async def _on_ledger(self, function: Callable[..., T], *args: object, **kwargs: object) -> T:
        try:
            return await self._lanes.ledger.run(
                self._limits.ledger_timeout, function, *args, **kwargs
            )
        except Exception as error:  # whatever the ledger raises, the platform gets 503
            raise _Unavailable("ledger", error) from error

    def _unavailable(self, export_id: str, failure: _Unavailable) -> Response:
        CALLBACKS.labels("store_error").inc()
        log.error(
            "callback_store_failed",
            extra={
                "export_id": export_id,
                "dependency": failure.dependency,
                "kind": failure.kind.value,
                "reason": str(failure),
            },
        )
        return JSONResponse(
            {
                "error": "unavailable",
                "detail": f"could not store the callback ({failure.dependency} unavailable); retry",
            },
            status_code=503,
            headers={"retry-after": str(RETRY_AFTER_SECONDS)},
        )

    def _too_large(self, export_id: str) -> Response:
        CALLBACKS.labels("too_large").inc()
        log.warning("callback_too_large", extra={"export_id": export_id})
        return JSONResponse(
            {"error": "too_large", "detail": f"body over {self._limits.max_bytes} bytes"},
            status_code=413,
        )

    async def _receive(self, request: Request, body: CallbackBody) -> tuple[int, str]:
        """Takes the body in, enforcing the size cap and the time limits as it goes."""
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
            body.write(chunk)
        body.finish()
        return size, digest.hexdigest()
