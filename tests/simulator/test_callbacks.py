from __future__ import annotations

from collections.abc import Callable

from tests.simulator.support import CallbackTarget, export, state_after


def test_a_receiver_answering_5xx_or_429_gets_the_callback_again(
    sim: str, target: CallbackTarget
) -> None:
    target.answers = [503, 429, 500]
    export(sim, target.callback_url())
    bodies = [c.body for c in target.wait_for(4)]
    assert len(set(bodies)) == 1
    snapshot = state_after(sim, callbacks=1)
    [entry] = snapshot["callbacks"]
    assert entry["attempts"] == 4 and entry["answer"] == 200 and entry["delivered"]
    assert snapshot["callbacks_sent"] == 4


def test_a_4xx_answer_is_final(sim: str, target: CallbackTarget) -> None:
    target.answers = [404]
    export(sim, target.callback_url())
    target.wait_for(1)
    [entry] = state_after(sim, callbacks=1)["callbacks"]
    assert entry["attempts"] == 1 and entry["answer"] == 404 and not entry["delivered"]


def test_an_unreachable_receiver_is_retried_then_given_up(
    start_simulator: Callable[..., str], target: CallbackTarget
) -> None:
    sim = start_simulator(callback_retries=2)
    export(sim, "http://127.0.0.1:9/unreachable")
    export(sim, target.callback_url(), "2024-03-02T00:00:00Z", "2024-03-02T01:00:00Z")
    target.wait_for(1)
    entries = state_after(sim, callbacks=2)["callbacks"]
    unreachable = next(e for e in entries if e["callbackUrl"].endswith("/unreachable"))
    assert unreachable["attempts"] == 3 and unreachable["attempts_answered"] == 0
    assert unreachable["answer"] is None and not unreachable["delivered"]
    assert "ConnectError" in unreachable["error"]
