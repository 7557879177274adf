"""How many small objects a second the store takes on its own: the ceiling of accepted callbacks.

An accepted callback is answered once two objects are written (its body and its metadata), so
`serve` cannot answer more accepted callbacks a second than half the writes its store takes,
whatever else it does. And `clients` closed-loop clients see a p99 under `target_ms` only if
callbacks are answered at `clients / target` a second or more (Little's law: that many are in
flight, each for the time it takes). `bench/callbacks.py` measures the ceiling in the same run,
through the service's own store client, before any load starts, and prints it beside its
table, so that a missed target says whether any service could have met it with that store.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass

from benchlib import percentile_ms

from storage.objectstore import ObjectStore

OBJECTS_PER_CALLBACK = 2
BODY = b"x" * 300


@dataclass(frozen=True)
class Ceiling:
    writes_per_second: float
    p99_ms: float
    threads: int

    @property
    def callbacks_per_second(self) -> float:
        return self.writes_per_second / OBJECTS_PER_CALLBACK

    def explain(self, clients: int, target_ms: float) -> str:
        """One line: the store's ceiling against the rate the target needs."""
        needed = clients / (target_ms / 1000)
        verdict = "below" if self.callbacks_per_second < needed else "above"
        return (
            f"the store alone took {self.writes_per_second:.0f} writes/s of {len(BODY)} bytes "
            f"({self.threads} threads, p99 {self.p99_ms:.0f} ms): at most "
            f"{self.callbacks_per_second:.0f} accepted callbacks/s, {verdict} the {needed:.0f}/s "
            f"that a p99 under {target_ms:.0f} ms at {clients} clients needs"
        )


def measure(store: ObjectStore, *, threads: int = 8, seconds: float = 3.0) -> Ceiling:
    """Puts small objects from `threads` threads for `seconds`, nothing else running in this
    process. `store` is the run's scratch space, kept apart from the lake `serve` writes to."""
    latencies: list[float] = []
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def put_until_stop() -> None:
        mine = []
        name = uuid.uuid4().hex
        while (started := time.monotonic()) < stop:
            store.put_bytes(f"{name}-{len(mine)}", BODY)
            mine.append(time.monotonic() - started)
        with lock:
            latencies.extend(mine)

    started = time.monotonic()
    workers = [threading.Thread(target=put_until_stop) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = time.monotonic() - started
    return Ceiling(len(latencies) / elapsed, percentile_ms(latencies, 0.99), threads)
