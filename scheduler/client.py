"""The upstream export API client (DESIGN §1), with the retries a rate-limited API needs."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

from storage.errors import ArchiverError, ErrorKind
from storage.layout import Window

log = logging.getLogger("chat_archiver.scheduler.client")

EXPORT_PATH = "/api/v1/chat-messages/export"
MESSAGES_PATH = "/api/v1/chat-messages"
MAX_RETRY_AFTER = 300.0


class UpstreamError(ArchiverError):
    """The upstream did not accept an export request."""


class AuthRejected(UpstreamError):
    """401/403: the API key is wrong or revoked. Nothing will succeed until it changes."""

    kind = ErrorKind.USER


class PeriodTooLong(UpstreamError):
    """400 "The export period exceeds the maximum of 6 months."."""

    kind = ErrorKind.PERMANENT


class RequestRefused(UpstreamError):
    """Another 4xx: the request itself is wrong; retrying the same request will not help."""

    kind = ErrorKind.PERMANENT


class UpstreamUnavailable(UpstreamError):
    """Rate limits, 5xx or network errors outlasted the retries; try later."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 4
    base_delay: float = 1.0
    max_delay: float = 60.0

    def backoff(self, attempt: int) -> float:
        """Exponential backoff with full jitter."""
        return random.uniform(0, min(self.max_delay, self.base_delay * 2**attempt))


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """`Retry-After` as seconds or an HTTP date, capped so a bad header cannot stall us for days."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    return max(0.0, min(seconds, MAX_RETRY_AFTER))


def _error_message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return str(body["message"])
    return response.text[:200]


def format_instant(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


class ExportClient:
    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        language: str = "enUs",
        retry: RetryPolicy | None = None,
        timeout: float = 30.0,
    ) -> None:
        self._retry = retry or RetryPolicy()
        # Told how long the upstream asked us to wait on a 429, so that every process of the
        # deployment waits too (see `Requester.throttled`).
        self.on_throttled: Callable[[float], Awaitable[None]] | None = None
        self._language = language
        self._client = httpx.AsyncClient(
            base_url=base_url,
            headers={"authorization": api_key, "accept": "application/json"},
            timeout=httpx.Timeout(timeout, connect=10.0),
            follow_redirects=False,
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def request_export(self, window: Window, callback_url: str) -> None:
        """Asks for one window; returns once accepted (the upstream answers with no job id)."""
        body = {
            "rangeStart": format_instant(window.start),
            "rangeEnd": format_instant(window.end),
            "callbackUrl": callback_url,
            "language": self._language,
        }
        await self._send("POST", EXPORT_PATH, json=body)

    async def check_key(self) -> None:
        """Raises AuthRejected when the key is refused. Asks for a chat that does not exist."""
        params = {"chatId": "00000000-0000-4000-8000-000000000000"}
        try:
            await self._send("GET", MESSAGES_PATH, params=params)
        except RequestRefused:
            return

    async def _send(self, method: str, path: str, **kwargs: object) -> httpx.Response:
        last_problem = ""
        retry_after: float | None = None
        for attempt in range(self._retry.attempts):
            if attempt:
                delay = retry_after if retry_after is not None else self._retry.backoff(attempt)
                log.info(
                    "upstream_retry",
                    extra={
                        "path": path,
                        "attempt": attempt + 1,
                        "delay_s": round(delay, 2),
                        "problem": last_problem,
                    },
                )
                await asyncio.sleep(delay)
            retry_after = None
            try:
                response = await self._client.request(method, path, **kwargs)  # type: ignore[arg-type]
            except httpx.TransportError as error:
                last_problem = f"{type(error).__name__}: {error}"
                continue
            status = response.status_code
            if status < 300:
                return response
            message = _error_message(response)
            if status in (401, 403):
                raise AuthRejected(f"the upstream rejected the API key ({status}: {message})")
            if status == 429 or status >= 500:
                retry_after = retry_after_seconds(response.headers.get("retry-after"))
                last_problem = f"{status}: {message}"
                if status == 429 and self.on_throttled is not None:
                    held = retry_after
                    if held is None:
                        held = min(self._retry.max_delay, self._retry.base_delay * 2**attempt)
                    await self.on_throttled(held)
                continue
            if status == 400 and "exceeds" in message.lower():
                raise PeriodTooLong(message)
            raise RequestRefused(f"{status}: {message}")
        raise UpstreamUnavailable(
            f"gave up after {self._retry.attempts} attempts: {last_problem}", retry_after
        )
