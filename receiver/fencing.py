"""What a worker checks before it writes anything of a window: its lease, the export's
eligibility, and the shrink guard.

A worker that was paused (a long GC, a partitioned network) past its lease must not write over
what the replica that took the window over has committed meanwhile: every object write of the
window is preceded by a check against the ledger, and the heartbeat's lost lease stops the
decoding between two batches. The remaining gap, a pause between the check and the write, is
as short as one upload call.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime

import pyarrow as pa

from storage.errors import PermanentError
from storage.ledger import Fenced, Ledger, ProcessingClaim


class ShrinkRefused(PermanentError):
    """A forced re-export has far fewer rows than the window it would replace."""


def shrink_refusal(claim: ProcessingClaim, rows: int, guard: float) -> str | None:
    """Why committing `rows` for `claim` would shrink its window too much, or None."""
    before = claim.committed_rows
    if not claim.forced or claim.shrink_accepted or not before or guard >= 1.0:
        return None
    if rows >= before * (1.0 - guard):
        return None
    return (
        f"forced re-export {claim.export_id} has {rows} rows, the committed window {before} "
        f"(more than {guard:.0%} fewer; ARCHIVER_SHRINK_GUARD); nothing was replaced. If the "
        f"upstream really holds fewer, run `chat-archiver replay --accept-shrink "
        f"{claim.export_id}`"
    )


class WindowFence:
    def __init__(
        self,
        ledger: Ledger,
        claim: ProcessingClaim,
        *,
        shrink_guard: float,
        lost: threading.Event | None = None,
    ) -> None:
        self._ledger = ledger
        self._claim = claim
        self._guard = shrink_guard
        self._lost = lost or threading.Event()

    def _check_lost(self) -> None:
        if self._lost.is_set():
            raise Fenced("the lease could not be renewed")

    def __call__(self, rows: int) -> None:
        """Before each object write: raises Fenced or ShrinkRefused to stop it."""
        self._check_lost()
        refusal = shrink_refusal(self._claim, rows, self._guard)
        if refusal is not None:
            raise ShrinkRefused(refusal)
        self._ledger.check_fence(self._claim, datetime.now(UTC))

    def batches(self, batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        """The batches, stopping between two of them once the lease is lost."""
        for batch in batches:
            self._check_lost()
            yield batch
