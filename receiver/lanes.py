"""Bounded thread lanes: one per dependency, so a stalled one cannot starve the others.

Blocking calls (a ledger query, an object-store request) run on a lane's own threads. A lane
admits at most `workers + queue` calls at once and refuses the next at once; every call is
awaited with a timeout. A call that times out keeps its thread until the driver gives up, and
keeps its slot with it: a dependency that stops answering fills its own lane and then gets
refused quickly, while the other lanes, and the event loop, go on.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from storage.errors import TransientError

P = ParamSpec("P")
T = TypeVar("T")


class LaneUnavailable(TransientError):
    """A call could not be answered in time; the message names the lane and why, in one line."""


class LaneBusy(LaneUnavailable):
    """Every slot of the lane is taken (its dependency is slow or stalled)."""


class LaneTimeout(LaneUnavailable):
    """The call did not finish within its timeout."""


class Lane:
    def __init__(self, name: str, workers: int, queue: int = 0) -> None:
        self.name = name
        self.capacity = workers + queue
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"lane-{name}")
        self._slots = threading.BoundedSemaphore(self.capacity)
        self._in_flight = 0
        self._count_lock = threading.Lock()

    @property
    def in_flight(self) -> int:
        """Calls admitted and not finished (running, queued, or abandoned after a timeout)."""
        return self._in_flight

    async def run(
        self, timeout: float, function: Callable[P, T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Runs `function` on the lane; LaneBusy at once if full, LaneTimeout after `timeout`."""
        if not self._slots.acquire(blocking=False):
            raise LaneBusy(f"{self.name}: all {self.capacity} slots are waiting on it")
        with self._count_lock:
            self._in_flight += 1
        try:
            future: Future[T] = self._executor.submit(function, *args, **kwargs)
        except RuntimeError:
            self._release(None)
            raise
        future.add_done_callback(self._release)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), timeout)
        except TimeoutError:
            raise LaneTimeout(f"{self.name}: no answer within {timeout:g} s") from None

    def _release(self, _future: Future[T] | None) -> None:
        with self._count_lock:
            self._in_flight -= 1
        self._slots.release()

    def shutdown(self) -> None:
        """Stops taking calls; threads still waiting on a dependency are left to finish alone."""
        self._executor.shutdown(wait=False, cancel_futures=True)
