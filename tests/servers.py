"""Real servers on loopback ports, for the tests: uvicorn in a thread, moto's S3 server."""

from __future__ import annotations

import asyncio
import contextlib
import socket
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


class TcpProxy:
    """Forwards a loopback port to a real server, and can fail like a network does: `stall()`
    keeps every connection open and forwards nothing (a black-holed peer), `refuse()` closes
    them and the port (a peer that is down), `resume()` forwards again."""

    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self._forwarding = threading.Event()
        self._forwarding.set()
        self._closed = False
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._listener: socket.socket | None = None

    def __enter__(self) -> TcpProxy:
        self._listen()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._closed = True
        self._forwarding.set()
        self._drop_all()

    def stall(self) -> None:
        self._forwarding.clear()

    def refuse(self) -> None:
        self._drop_all()

    def resume(self) -> None:
        if self._listener is None:
            self._listen()
        self._forwarding.set()

    def _listen(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(128)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _drop_all(self) -> None:
        with self._lock:
            doomed = self._sockets + ([self._listener] if self._listener else [])
            self._sockets = []
            self._listener = None
        for sock in doomed:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _track(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock)

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            self._track(client)
            threading.Thread(target=self._connect, args=(client,), daemon=True).start()

    def _connect(self, client: socket.socket) -> None:
        self._forwarding.wait()
        try:
            upstream = socket.create_connection(self.target, timeout=5)
        except OSError:
            client.close()
            return
        upstream.settimeout(None)
        self._track(upstream)
        threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()
        threading.Thread(target=self._pump, args=(upstream, client), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        while not self._closed:
            try:
                data = source.recv(65536)
            except OSError:
                break
            if not data:
                break
            # Bytes that arrive during a stall are held, not passed on.
            self._forwarding.wait()
            try:
                sink.sendall(data)
            except OSError:
                break
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)
