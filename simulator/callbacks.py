"""The life of an accepted export: wait, prepare the file, POST the callback, retry.

Like a real platform, delivery retries with exponential backoff while the receiver answers
5xx or 429 or cannot be reached, and gives up after `callback_retries` retries.
"""

from __future__ import annotations

import asyncio
import heapq
import json
import logging
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import httpx

from simulator.config import SimulatorConfig
from simulator.corpus import MessageCorpus
from simulator.files import SHAPE_FILES, FileStore, write_export
from simulator.state import CallbackPlan, SimulatorState, iso

logger = logging.getLogger("simulator")

USER_AGENT = "chat-platform-simulator/1.0 (webhooks)"
MAX_RETRY_AFTER = 30.0

Content = Callable[[], bytes | AsyncIterator[bytes]]


@dataclass(frozen=True)
class ExportJob:
    start: datetime
    end: datetime
    callback_url: str
    language: str
    link_base: str
    # The k-th accepted export of its range, when messages are revised per request.
    revision: int = 0


def export_messages(
    corpus: MessageCorpus, posted: list[dict[str, Any]], start: datetime, end: datetime
) -> Iterator[dict[str, Any]]:
    """The corpus's messages in [start, end) merged with those created through the API."""
    created = [m for m in posted if start <= datetime.fromisoformat(m["createdAt"]) < end]
    if not created:
        return corpus.between(start, end)
    return heapq.merge(corpus.between(start, end), created, key=lambda m: m["createdAt"])


class ExportRunner:
    """Runs export jobs as background tasks on the server's event loop."""

    def __init__(
        self,
        config: SimulatorConfig,
        corpus: MessageCorpus,
        state: SimulatorState,
        files: FileStore,
    ) -> None:
        self._config = config
        self._corpus = corpus
        self._state = state
        self._files = files
        self._client: httpx.AsyncClient | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        # Set on shutdown so a file being written in a worker thread stops early.
        self._stopping = threading.Event()

    async def start(self) -> None:
        self._client = httpx.AsyncClient(
            timeout=self._config.callback_timeout, headers={"user-agent": USER_AGENT}
        )

    async def aclose(self) -> None:
        """Cancels jobs still waiting or running, then closes the HTTP client."""
        self._stopping.set()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()

    def submit(self, job: ExportJob) -> None:
        task = asyncio.create_task(self._run(job, self._state.callback_delay()))
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("export job failed", exc_info=task.exception())

    async def _run(self, job: ExportJob, delay: float) -> None:
        await asyncio.sleep(delay)
        plan = self._state.take_callback_plan()
        entry: dict[str, Any] = {
            "rangeStart": iso(job.start),
            "rangeEnd": iso(job.end),
            "callbackUrl": job.callback_url,
            "shape": plan.shape,
        }
        try:
            if plan.drop:
                self._state.record_callback(_outcome(entry, "dropped", 0, 0, None, None))
            elif plan.failure is not None:
                error = plan.failure
                if plan.echo:
                    error += f" (key {self._config.api_key}, callback {job.callback_url})"
                body = json.dumps({"status": "failed", "error": error}).encode()
                await self._deliver_all(job, plan, entry | {"kind": "failed"}, lambda: body)
            else:
                await self._export(job, plan, entry | {"kind": "completed"})
        except Exception as exc:
            self._state.record_callback(_outcome(entry, "error", 0, 0, None, repr(exc)))
            raise

    async def _export(self, job: ExportJob, plan: CallbackPlan, entry: dict[str, Any]) -> None:
        name, path = self._files.new_path(plan.shape)
        posted = self._state.posted()

        def write() -> int:
            found = (
                iter(())
                if plan.empty
                else export_messages(self._corpus, posted, job.start, job.end)
            )
            messages = _until(self._stopping, _revised(found, job.revision))
            return write_export(path, messages, plan.shape, job.language, self._config.csv_header)

        try:
            entry["messages"] = await anyio.to_thread.run_sync(write)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        if plan.shape.startswith("inline-"):
            try:
                await self._deliver_all(job, plan, entry, lambda: _file_chunks(path), path)
            finally:
                path.unlink(missing_ok=True)
            return
        self._files.publish(name, plan.shape)
        url = f"{job.link_base}/files/{name}"
        body = json.dumps({"status": "completed", "url": url}).encode()
        await self._deliver_all(job, plan, entry | {"url": url}, lambda: body)

    async def _deliver_all(
        self,
        job: ExportJob,
        plan: CallbackPlan,
        entry: dict[str, Any],
        content: Content,
        path: Path | None = None,
    ) -> None:
        """Sends the callback, then each duplicate, each with its own retries."""
        headers = {"content-type": SHAPE_FILES[plan.shape][1] if path else "application/json"}
        if path is not None:
            headers["content-length"] = str(path.stat().st_size)
        for copy in range(1 + plan.duplicates):
            outcome = await self._deliver(job.callback_url, content, headers)
            self._state.record_callback(entry | {"copy": copy} | outcome)
        if plan.redeliver_after is not None:
            await asyncio.sleep(plan.redeliver_after)
            outcome = await self._deliver(job.callback_url, content, headers)
            self._state.record_callback(entry | {"copy": "redelivery"} | outcome)

    async def _deliver(self, url: str, content: Content, headers: dict[str, str]) -> dict[str, Any]:
        if self._client is None:
            raise RuntimeError("ExportRunner.start() must be awaited before jobs run")
        attempts = answered = 0
        answer: int | None = None
        error: str | None = None
        wait = 0.0
        for attempt in range(self._config.callback_retries + 1):
            if attempt:
                backoff = self._config.callback_retry_delay * 2 ** (attempt - 1)
                await asyncio.sleep(max(backoff, wait))
            attempts += 1
            try:
                response = await self._client.post(url, content=content(), headers=headers)
            except httpx.TransportError as exc:
                answer, error, wait = None, f"{type(exc).__name__}: {exc}", 0.0
                continue
            answered += 1
            answer, error = response.status_code, None
            if answer < 500 and answer != 429:
                break
            wait = _retry_after(response)
        return {
            "attempts": attempts,
            "attempts_answered": answered,
            "answer": answer,
            "delivered": answer is not None and 200 <= answer < 300,
            "error": error,
        }


def _outcome(
    entry: dict[str, Any],
    kind: str,
    attempts: int,
    answered: int,
    answer: int | None,
    error: str | None,
) -> dict[str, Any]:
    return entry | {
        "kind": kind,
        "copy": 0,
        "attempts": attempts,
        "attempts_answered": answered,
        "answer": answer,
        "delivered": False,
        "error": error,
    }


class ShuttingDown(Exception):
    """The simulator is stopping; the file being written is abandoned."""


def _until(
    stopping: threading.Event, messages: Iterator[dict[str, Any]]
) -> Iterator[dict[str, Any]]:
    for count, message in enumerate(messages):
        if count % 10_000 == 0 and stopping.is_set():
            raise ShuttingDown("the simulator stopped while writing an export file")
        yield message


def _revised(messages: Iterator[dict[str, Any]], revision: int) -> Iterator[dict[str, Any]]:
    """The messages as edited `revision` times since the first export (unchanged for 0)."""
    if revision == 0:
        yield from messages
        return
    for message in messages:
        created = datetime.fromisoformat(str(message["createdAt"]))
        edited = created + timedelta(minutes=revision)
        yield message | {
            "content": f"{message['content']} (edit {revision})",
            "updatedAt": edited.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        }


def _retry_after(response: httpx.Response) -> float:
    value = response.headers.get("retry-after", "")
    return min(float(value), MAX_RETRY_AFTER) if value.isdigit() else 0.0


async def _file_chunks(path: Path) -> AsyncIterator[bytes]:
    async with await anyio.open_file(path, "rb") as stream:
        while chunk := await stream.read(1 << 20):
            yield chunk
