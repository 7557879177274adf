"""Helpers for the simulator tests: a callback target app and API calls."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from simulator.config import SimulatorConfig

# One client for all tests: a new httpx.Client per call costs ~50 ms of TLS setup.
HTTP = httpx.Client(timeout=10.0)
API_KEY = "test-key"
BASE_CONFIG = SimulatorConfig(
    api_key=API_KEY,
    messages_per_day=240,
    allow_insecure_callbacks=True,
    callback_delay=0.0,
    callback_retry_delay=0.01,
)


@dataclass
class Callback:
    path: str
    headers: dict[str, str]
    body: bytes


class CallbackTarget:
    """One test's view of the callback server: its own URL prefix, callbacks and answers."""

    def __init__(self, base_url: str) -> None:
        self.url = base_url
        self.received: list[Callback] = []
        self.answers: list[int] = []
        self.changed = threading.Condition()

    def callback_url(self, name: str = "export") -> str:
        return f"{self.url}/{name}"

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Callback]:
        """Blocks until `count` callbacks arrived; fails the test if they do not."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while len(self.received) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"{len(self.received)} callbacks arrived, wanted {count}")
                self.changed.wait(left)
            return list(self.received)


class CallbackServer:
    """A tiny receiving app shared by a module's tests; each test gets a fresh target."""

    def __init__(self) -> None:
        self.url = ""
        self._targets: dict[str, CallbackTarget] = {}
        self.app = Starlette(
            routes=[Route("/cb/{target}/{rest:path}", self._receive, methods=["POST"])]
        )

    def new_target(self) -> CallbackTarget:
        name = uuid.uuid4().hex
        target = CallbackTarget(f"{self.url}/cb/{name}")
        self._targets[name] = target
        return target

    async def _receive(self, request: Request) -> Response:
        target = self._targets.get(request.path_params["target"])
        if target is None:
            return JSONResponse({"status": "unknown"}, status_code=404)
        body = await request.body()
        with target.changed:
            target.received.append(Callback(request.url.path, dict(request.headers), body))
            status = target.answers.pop(0) if target.answers else 200
            target.changed.notify_all()
        return JSONResponse({"status": "accepted"}, status_code=status)


def export(
    base_url: str,
    callback_url: str,
    start: str = "2024-03-01T00:00:00Z",
    end: str | None = "2024-03-01T06:00:00Z",
    key: str = API_KEY,
    **fields: Any,
) -> httpx.Response:
    body: dict[str, Any] = {"rangeStart": start, "rangeEnd": end, "callbackUrl": callback_url}
    body.update(fields)
    return HTTP.post(
        f"{base_url}/api/v1/chat-messages/export", json=body, headers={"authorization": key}
    )


def state(base_url: str) -> dict[str, Any]:
    response = HTTP.get(f"{base_url}/_sim/state")
    response.raise_for_status()
    result: dict[str, Any] = response.json()
    return result


def set_faults(base_url: str, **faults: Any) -> dict[str, Any]:
    response = HTTP.post(f"{base_url}/_sim/faults", json=faults)
    response.raise_for_status()
    result: dict[str, Any] = response.json()
    return result


def wait_until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    """Polls `check` until it holds; fails the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(0.02)


def state_after(base_url: str, callbacks: int) -> dict[str, Any]:
    """The state once `callbacks` callback outcomes are recorded (they land after delivery)."""
    wait_until(lambda: len(state(base_url)["callbacks"]) >= callbacks)
    return state(base_url)
