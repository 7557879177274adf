"""Random sequences of requests, callbacks, time-outs, forced re-exports, claims and crashed or
paused workers, against the real ledger (which executes the lifecycle module's transitions).
Whatever the order: a window is never committed from a superseded export, a claim that another
claim replaced never commits, and every state change is one the lifecycle allows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from storage import lifecycle
from storage.layout import Window
from storage.ledger import Fenced, Ledger, ProcessingClaim
from storage.lifecycle import TRANSITIONS, WindowState

STREAM = "chat_messages"
WINDOW = Window(datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 2, tzinfo=UTC))
LEASE = timedelta(minutes=2)
TIMEOUT = timedelta(hours=1)


def _reachable(before: str, after: str) -> bool:
    """Whether one step takes `before` to `after` (or it stayed put)."""
    if before == after:
        return True
    return any(
        lifecycle.allowed(step, before) and transition.target == after
        for step, transition in TRANSITIONS.items()
    )


class WindowLife(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.ledger = Ledger.open("sqlite://")
        self.now = datetime(2024, 2, 1, tzinfo=UTC)
        self.ledger.plan(STREAM, [WINDOW])
        self.exports: list[str] = []
        self.superseded: set[str] = set()
        self.claims: list[ProcessingClaim] = []
        self.latest: ProcessingClaim | None = None
        self.processes = 0
        self.callbacks = 0
        self.state: str = WindowState.PLANNED

    def teardown(self) -> None:
        self.ledger.close()

    def _record(self) -> None:
        record = self.ledger.window(STREAM, WINDOW)
        assert record is not None
        assert _reachable(self.state, record.state), (self.state, record.state)
        self.state = record.state

    @rule()
    def request(self) -> None:
        for attempt in self.ledger.claim_due(
            STREAM, self.now, limit=1, callback_timeout=TIMEOUT, max_attempts=4
        ):
            self.exports.append(attempt.export_id)
        self._record()

    @rule(data=st.data())
    def deliver(self, data: st.DataObject) -> None:
        if not self.exports:
            return
        export_id = data.draw(st.sampled_from(self.exports))
        body = data.draw(st.sampled_from(["a", "b"]))
        self.callbacks += 1
        outcome = self.ledger.record_callback(
            export_id=export_id,
            callback_id=f"cb-{self.callbacks}",
            received_at=self.now,
            raw_key=f"_raw/{export_id}/{self.callbacks}.body",
            body_sha256=body * 64,
            size=1,
        )
        if export_id in self.superseded:
            assert outcome == "superseded"
        self._record()

    @rule(minutes=st.sampled_from([1, 3, 61]))
    def time_passes(self, minutes: int) -> None:
        self.now += timedelta(minutes=minutes)

    @rule(force=st.booleans(), rerequest=st.booleans())
    def export_again(self, force: bool, rerequest: bool) -> None:
        committed = self.state == WindowState.COMMITTED
        self.ledger.force_due(
            STREAM, [WINDOW], include_committed=force, rerequest=rerequest, now=self.now
        )
        if force and committed:
            self.superseded |= set(self.exports)
        self._record()

    @rule(replica=st.sampled_from(["a", "b"]))
    def claim(self, replica: str) -> None:
        # Each claim by a process of its own: a worker works one window at a time.
        self.processes += 1
        claim = self.ledger.claim_received(f"{replica}-{self.processes}", self.now, LEASE)
        if claim is not None:
            assert claim.export_id not in self.superseded
            self.claims.append(claim)
            self.latest = claim
        self._record()

    @rule(data=st.data(), outcome=st.sampled_from(["commit", "quarantine", "retry"]))
    def finish(self, data: st.DataObject, outcome: str) -> None:
        """A worker finishes a claim it holds, or held before it paused or crashed."""
        if not self.claims:
            return
        claim = data.draw(st.sampled_from(self.claims))
        stale = claim is not self.latest
        try:
            if outcome == "commit":
                self.ledger.commit(claim, rows=1, rejects=0, manifest_key="m", now=self.now)
            elif outcome == "quarantine":
                self.ledger.quarantine(claim, reason="bad", now=self.now)
            else:
                self.ledger.attempt_failed(
                    claim, reason="failed", now=self.now, max_attempts=4, retry_at=self.now
                )
        except Fenced:
            self.claims.remove(claim)
            self._record()
            return
        assert not stale, "a claim that another claim replaced finished its window"
        assert claim.export_id not in self.superseded
        self.claims.remove(claim)
        if outcome == "commit":
            record = self.ledger.window(STREAM, WINDOW)
            assert record is not None and record.export_id == claim.export_id
        self._record()

    @invariant()
    def committed_from_an_eligible_export(self) -> None:
        record = self.ledger.window(STREAM, WINDOW)
        assert record is not None
        if record.state == WindowState.COMMITTED:
            assert record.export_id not in self.superseded or record.export_id is None


WindowLife.TestCase.settings = settings(
    max_examples=20,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_window_life = WindowLife.TestCase
