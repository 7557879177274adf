"""Blocks parsed on two threads at once, handed on in the order they were cut.

pyarrow's JSON reader releases the GIL, so two blocks parse on two cores while the thread
that cuts them cuts the next and writes the last. What a block becomes may depend on the
unknown fields earlier blocks taught the file's `Drift`; each parse therefore works on a
snapshot of it, and the results are taken oldest first, merging what each learnt into the
file's `Drift` then. A result is taken as it is when its snapshot was up to date, or when
the fields learnt since could not have changed it (the block holds none of them, and it took
the drift path without a refusal); otherwise the block is parsed again, with the file's
fields as they are by then. So rows, columns and errors are those of parsing the blocks one
after another.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType
from typing import Generic, TypeVar

import pyarrow as pa

from receiver.decoding.drift import MAX_UNKNOWN_FIELDS, Drift
from receiver.decoding.errors import DecodeError

PARSERS = 2
"""Threads parsing; also the blocks waiting to be handed on beyond the one being taken."""

_T = TypeVar("_T")


class Parsers:
    """A file's parser threads and its unknown fields; used by one thread, as a context
    manager (leaving it cancels what has not started and waits for what has)."""

    def __init__(self, threads: int = PARSERS) -> None:
        self.drift = Drift()
        # One executor per thread, so that `alone` parses all run on the same one (Arrow keeps
        # freed memory per thread: a second thread parsing now and then costs its own).
        self._lanes = [
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="json-decode")
            for _ in range(threads)
        ]
        self._next = 0

    def __enter__(self) -> Parsers:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        for lane in self._lanes:
            lane.shutdown(wait=True, cancel_futures=True)

    def submit(self, parse: Callable[[Drift], _T], *, alone: bool = False) -> Parse[_T]:
        """`parse(drift)` started on the parser threads in turn (on the first one only if
        `alone`); take its result with `Parse.result`, in the order the blocks were submitted."""
        lane = self._lanes[0]
        if not alone:
            lane = self._lanes[self._next]
            self._next = (self._next + 1) % len(self._lanes)
        snapshot = self.drift.snapshot()
        known = len(snapshot.names)  # before the parser thread can learn any
        return Parse(self, parse, snapshot, known, lane.submit(_released, parse, snapshot))


class Parse(Generic[_T]):
    """One block's parse; `result` is taken at most once per block, oldest block first."""

    def __init__(
        self,
        parsers: Parsers,
        parse: Callable[[Drift], _T],
        snapshot: Drift,
        known: int,
        future: Future[_T],
    ) -> None:
        self._parsers = parsers
        self._parse = parse
        self._snapshot = snapshot  # the parser thread's until `future` is done
        self._known = known  # the file's fields when it was submitted
        self._future = future

    def done(self) -> bool:
        return self._future.done()

    def cancel(self) -> None:
        self._future.cancel()

    def result(self) -> _T:
        drift = self._parsers.drift
        try:
            value = self._future.result()
        except DecodeError:
            if len(drift.names) == self._known:
                raise  # what parsing it in turn would have raised
            return _released(self._parse, drift)
        learnt = self._snapshot.names[self._known :]
        since = drift.names[self._known :]
        if not since:
            drift.adopt(self._snapshot)
            return value
        if value is not None and not self._snapshot.refusals and _same(learnt, since, drift):
            for name in learnt:
                if name not in since and not drift.learn(name):
                    raise AssertionError(f"{name!r} was learnt by the block but not by the file")
            return value
        return _released(self._parse, drift)


def _same(learnt: list[str], since: list[str], drift: Drift) -> bool:
    """Whether a block that learnt `learnt` from a snapshot gives what it would have given
    with the fields learnt `since` then as well.

    Its columns are the snapshot's fields present in it, then `learnt` in that order; the
    file's order puts those of `since` it holds first, in their order. Fields of `since` it
    does not hold change nothing (the block's records were read with all it holds declared).
    """
    taught = set(learnt)
    ahead = [name for name in since if name in taught]
    return (
        learnt[: len(ahead)] == ahead
        and len(drift.names) + len(learnt) - len(ahead) <= MAX_UNKNOWN_FIELDS
    )


def _released(parse: Callable[[Drift], _T], drift: Drift) -> _T:
    """`parse(drift)`, after which the thread hands back the memory it no longer uses.

    Arrow's allocator keeps freed memory per thread; the batches a parser thread made are
    freed by another once written, and without this the process holds tens of MB more.
    """
    try:
        return parse(drift)
    finally:
        pa.default_memory_pool().release_unused()
