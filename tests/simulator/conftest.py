"""A simulator and a callback target, both real servers on loopback."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import replace
from typing import Any

import pytest

from simulator.app import create_app
from tests.servers import serve_in_thread
from tests.simulator.support import BASE_CONFIG, CallbackServer, CallbackTarget


@pytest.fixture(scope="session")
def callback_server() -> Iterator[CallbackServer]:
    server = CallbackServer()
    with serve_in_thread(server.app) as url:
        server.url = url
        yield server


@pytest.fixture
def target(callback_server: CallbackServer) -> CallbackTarget:
    return callback_server.new_target()


@pytest.fixture
def start_simulator() -> Iterator[Callable[..., str]]:
    """Starts a simulator with BASE_CONFIG changed by keyword arguments; returns its URL."""
    with ExitStack() as stack:

        def start(**changes: Any) -> str:
            config = replace(BASE_CONFIG, **changes)
            return stack.enter_context(serve_in_thread(create_app(config)))

        yield start


@pytest.fixture
def sim(start_simulator: Callable[..., str]) -> str:
    return start_simulator()
