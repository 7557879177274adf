"""Real servers on loopback ports, for the tests: uvicorn in a thread, moto's S3 server."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from archiver.embedded import free_port, running


def wait_until_up(url: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            httpx.get(url, timeout=1.0)
            return
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@contextmanager
def serve_in_thread(app: Any, port: int | None = None) -> Iterator[str]:
    """Runs an ASGI app under uvicorn in a background thread; yields its base URL."""
    port = port or free_port()
    with running(app, "127.0.0.1", port):
        yield f"http://127.0.0.1:{port}"


class SlowFiles:
    """Serves another server's `/files/{name}` slowly: the first bytes at once, the rest after
    `stall` seconds, so a service can be caught in the middle of a download."""

    def __init__(self, stall: float) -> None:
        self.stall = stall
        self.target = ""
        self.started = threading.Event()

    def app(self) -> Starlette:
        async def serve_file(request: Request) -> Response:
            async with httpx.AsyncClient() as client:
                found = await client.get(f"{self.target}/files/{request.path_params['name']}")
            if found.status_code != 200:
                return Response(found.content, status_code=found.status_code)
            payload = found.content

            async def body() -> AsyncIterator[bytes]:
                yield payload[:10]
                self.started.set()
                await asyncio.sleep(self.stall)
                yield payload[10:]

            return StreamingResponse(body(), media_type=found.headers.get("content-type"))

        return Starlette(routes=[Route("/files/{name}", serve_file)])
