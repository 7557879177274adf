"""Runs the simulator under uvicorn in a background thread, for the demo and the tests."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import uvicorn

from simulator.app import create_app
from simulator.config import SimulatorConfig

STARTUP_TIMEOUT = 15.0


def run_in_thread(
    config: SimulatorConfig | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    log_level: str = "warning",
) -> tuple[str, Callable[[], None]]:
    """Starts the simulator; returns its base URL and a function that stops it.

    Port 0 picks a free port, so several simulators can run side by side.
    """
    server = uvicorn.Server(
        uvicorn.Config(create_app(config), host=host, port=port, log_level=log_level, lifespan="on")
    )
    thread = threading.Thread(target=server.run, name="chat-simulator", daemon=True)
    thread.start()
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError(f"the simulator could not start on {host}:{port}")
        if time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"the simulator did not start within {STARTUP_TIMEOUT:.0f}s")
        time.sleep(0.01)
    bound_port = server.servers[0].sockets[0].getsockname()[1]

    def stop() -> None:
        server.should_exit = True
        thread.join(timeout=STARTUP_TIMEOUT)

    return f"http://{host}:{bound_port}", stop


@contextmanager
def running_simulator(
    config: SimulatorConfig | None = None, host: str = "127.0.0.1", port: int = 0
) -> Iterator[str]:
    """The simulator's base URL while the block runs; stopped afterwards."""
    url, stop = run_in_thread(config, host, port)
    try:
        yield url
    finally:
        stop()
