"""Recording stored callbacks in the ledger a group at a time.

Each write transaction commits to disk, and on SQLite they take turns: fifty callbacks at once
would queue for fifty commits. Instead, the callbacks that arrive while one group is being
written wait and go in the next, in one transaction. So a burst costs a few commits, and a
lone callback is written at once. One group is written at a time, on a lane of its own, within
the ledger's timeout; a caller waits for at most the group in hand and its own.
"""

from __future__ import annotations

import asyncio

from receiver.lanes import Lane
from storage.ledger import CallbackReceipt, Ledger
from storage.ledger.recording import CallbackOutcome

MAX_GROUP = 100
"""Receipts in one transaction: a bound on its statements and on how long it holds the lock."""

_Waiting = tuple[CallbackReceipt, "asyncio.Future[CallbackOutcome]"]


class CallbackRecorder:
    def __init__(self, ledger: Ledger, lane: Lane, timeout: float) -> None:
        self._ledger = ledger
        self._lane = lane
        self._timeout = timeout
        self._waiting: list[_Waiting] = []
        self._writing: asyncio.Task[None] | None = None

    async def record(self, receipt: CallbackReceipt) -> CallbackOutcome:
        """The callback's outcome once its group has committed; raises what the ledger or the
        lane raised for the group (or the LedgerError of an unknown export, for this one)."""
        waiter: asyncio.Future[CallbackOutcome] = asyncio.get_running_loop().create_future()
        self._waiting.append((receipt, waiter))
        if self._writing is None:
            self._writing = asyncio.create_task(self._write_groups())
        return await waiter

    async def _write_groups(self) -> None:
        group: list[_Waiting] = []
        try:
            while self._waiting:
                group = self._waiting[:MAX_GROUP]
                del self._waiting[:MAX_GROUP]
                receipts = [receipt for receipt, _ in group]
                try:
                    outcomes = await self._lane.run(
                        self._timeout, self._ledger.record_callbacks, receipts
                    )
                except Exception as error:  # noqa: BLE001 - each caller of the group raises it
                    for _, waiter in group:
                        if not waiter.done():
                            waiter.set_exception(error)
                    continue
                for (_, waiter), outcome in zip(group, outcomes, strict=True):
                    if waiter.done():
                        continue  # its request was cancelled (the client went away)
                    if isinstance(outcome, Exception):
                        waiter.set_exception(outcome)
                    else:
                        waiter.set_result(outcome)
                group = []
        finally:
            # Cancelled (shutdown) with callers still waiting: none may wait for ever.
            for _, waiter in group + self._waiting:
                waiter.cancel()
            self._waiting.clear()
            self._writing = None
