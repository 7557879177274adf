from __future__ import annotations

import gzip
import json
import time
from collections.abc import Callable
from datetime import datetime

import pytest

from simulator.config import SimulatorConfig
from simulator.corpus import MessageCorpus
from simulator.faults import FaultError, Faults
from tests.simulator.support import (
    BASE_CONFIG,
    HTTP,
    CallbackTarget,
    export,
    set_faults,
    state,
    state_after,
)


def test_duplicate_callbacks_sends_each_callback_n_extra_times(
    start_simulator: Callable[..., str], target: CallbackTarget
) -> None:
    sim = start_simulator(duplicate_callbacks=2)
    export(sim, target.callback_url())
    bodies = [c.body for c in target.wait_for(3)]
    assert len(set(bodies)) == 1
    snapshot = state_after(sim, callbacks=3)
    assert len(target.received) == 3
    assert snapshot["callbacks_sent"] == 3 and snapshot["callbacks_delivered"] == 3
    assert [c["copy"] for c in snapshot["callbacks"]] == [0, 1, 2]


def test_drop_callbacks_true_never_sends_and_a_count_drops_only_the_next_n(
    sim: str, target: CallbackTarget
) -> None:
    set_faults(sim, drop_callbacks=True)
    export(sim, target.callback_url("dropped"))
    time.sleep(0.3)
    assert target.received == []
    set_faults(sim, drop_callbacks=1)
    export(sim, target.callback_url("dropped-again"))
    export(sim, target.callback_url("delivered"), "2024-03-02T00:00:00Z", "2024-03-02T01:00:00Z")
    [callback] = target.wait_for(1)
    assert callback.path.endswith("/delivered")
    snapshot = state_after(sim, callbacks=3)
    assert snapshot["callbacks_dropped"] == 2
    assert snapshot["faults"]["drop_callbacks"] == 0


@pytest.mark.parametrize(("status", "retry_after"), [(429, "3"), (503, "3"), (500, None)])
def test_fail_export_requests_answers_the_next_n_requests_with_the_status(
    sim: str, target: CallbackTarget, status: int, retry_after: str | None
) -> None:
    set_faults(sim, fail_export_requests={"status": status, "count": 2, "retry_after": 2.5})
    for _ in range(2):
        response = export(sim, target.callback_url())
        assert response.status_code == status
        assert response.headers.get("retry-after") == retry_after
        assert set(response.json()) == {"code", "message", "name", "cta", "feedback"}
    assert export(sim, target.callback_url()).status_code == 200
    target.wait_for(1)
    snapshot = state(sim)
    assert [r["status"] for r in snapshot["export_requests"]] == [status, status, 200]
    assert snapshot["faults"]["fail_export_requests"]["count"] == 0


def test_failure_notices_make_the_next_n_callbacks_failures(
    sim: str, target: CallbackTarget
) -> None:
    set_faults(sim, failure_notices={"count": 1, "error": "Disk full"})
    export(sim, target.callback_url("first"))
    assert json.loads(target.wait_for(1)[0].body) == {"status": "failed", "error": "Disk full"}
    export(sim, target.callback_url("second"))
    assert json.loads(target.wait_for(2)[1].body)["status"] == "completed"
    assert [c["kind"] for c in state_after(sim, 2)["callbacks"]] == ["failed", "completed"]


def test_callback_shape_can_change_while_running(sim: str, target: CallbackTarget) -> None:
    set_faults(sim, callback_shape="inline-ndjson")
    export(sim, target.callback_url())
    body = target.wait_for(1)[0].body
    expected = MessageCorpus(BASE_CONFIG.seed, BASE_CONFIG.messages_per_day).between(
        datetime.fromisoformat("2024-03-01T00:00:00Z"),
        datetime.fromisoformat("2024-03-01T06:00:00Z"),
    )
    assert [json.loads(line) for line in body.splitlines()] == list(expected)


def test_expire_links_makes_every_link_answer_410(sim: str, target: CallbackTarget) -> None:
    export(sim, target.callback_url())
    url = json.loads(target.wait_for(1)[0].body)["url"]
    assert gzip.decompress(HTTP.get(url).content)
    set_faults(sim, expire_links=True)
    assert HTTP.get(url).status_code == 410
    set_faults(sim, expire_links=False)
    assert HTTP.get(url).status_code == 200


def test_callback_delay_holds_the_callback_back(sim: str, target: CallbackTarget) -> None:
    set_faults(sim, callback_delay=30)
    export(sim, target.callback_url())
    time.sleep(0.3)
    assert target.received == []
    assert state(sim)["faults"]["callback_delay"] == 30


def test_fault_updates_are_validated_and_merged(sim: str) -> None:
    set_faults(sim, duplicate_callbacks=1)
    for bad in (
        {"no_such_switch": 1},
        {"duplicate_callbacks": -1},
        {"callback_shape": "xml"},
        {"fail_export_requests": {"status": 404, "count": 1}},
        {"expire_links": "yes"},
    ):
        response = HTTP.post(f"{sim}/_sim/faults", json=bad)
        assert response.status_code == 400 and response.json()["error"]
    assert HTTP.post(f"{sim}/_sim/faults", content=b"[").status_code == 400
    faults = set_faults(sim, expire_links=True)
    assert faults["duplicate_callbacks"] == 1 and faults["expire_links"] is True


def test_reset_clears_counts_and_restores_the_configured_faults(
    start_simulator: Callable[..., str], target: CallbackTarget
) -> None:
    sim = start_simulator(duplicate_callbacks=1)
    set_faults(sim, duplicate_callbacks=0, expire_links=True)
    export(sim, target.callback_url())
    state_after(sim, callbacks=1)
    assert HTTP.post(f"{sim}/_sim/reset").status_code == 200
    snapshot = state(sim)
    assert snapshot["export_requests_total"] == 0 and snapshot["callbacks"] == []
    assert snapshot["export_requests_by_range"] == {} and snapshot["callbacks_sent"] == 0
    assert snapshot["faults"]["duplicate_callbacks"] == 1
    assert snapshot["faults"]["expire_links"] is False


def test_retry_after_defaults_to_one_second_and_null_leaves_it_out(sim: str) -> None:
    set_faults(sim, fail_export_requests={"status": 429, "count": 1})
    assert export(sim, "http://127.0.0.1:9/cb").headers["retry-after"] == "1"
    set_faults(sim, fail_export_requests={"status": 503, "count": 1, "retry_after": None})
    response = export(sim, "http://127.0.0.1:9/cb")
    assert response.status_code == 503 and "retry-after" not in response.headers


def test_a_faulty_update_changes_nothing() -> None:
    faults = Faults.from_config(SimulatorConfig(duplicate_callbacks=2))
    with pytest.raises(FaultError, match="unknown fault switch"):
        faults.merge({"duplicate_callbacks": 5, "bogus": True})
    assert faults.duplicate_callbacks == 2


def test_config_faults_are_validated_at_construction() -> None:
    with pytest.raises(FaultError):
        Faults.from_config(SimulatorConfig(fail_export_requests={"status": 200}))
    with pytest.raises(ValueError, match="callback_shape"):
        SimulatorConfig(callback_shape="xml")


def test_redeliver_sends_the_next_callback_once_more_after_a_delay(
    sim: str, target: CallbackTarget
) -> None:
    set_faults(sim, redeliver={"count": 1, "after": 0.3})
    export(sim, target.callback_url("first"))
    [first] = target.wait_for(1)
    started = time.monotonic()
    [_, again] = target.wait_for(2)
    assert time.monotonic() - started >= 0.2
    assert (again.path, again.body) == (first.path, first.body)
    snapshot = state_after(sim, callbacks=2)
    assert [c["copy"] for c in snapshot["callbacks"]] == [0, "redelivery"]
    assert snapshot["faults"]["redeliver"]["count"] == 0


def _inline_messages(callback_body: bytes) -> list[dict[str, object]]:
    return [json.loads(line) for line in callback_body.decode().splitlines() if line]


def test_revise_per_request_edits_each_later_export_of_a_range(
    sim: str, target: CallbackTarget
) -> None:
    set_faults(sim, callback_shape="inline-ndjson", revise_per_request=True)
    export(sim, target.callback_url("a"))
    [first] = target.wait_for(1)
    export(sim, target.callback_url("b"))
    [_, second] = target.wait_for(2)
    before, after = _inline_messages(first.body), _inline_messages(second.body)
    assert [m["id"] for m in before] == [m["id"] for m in after] and before
    assert all(str(m["content"]).endswith(" (edit 1)") for m in after)
    assert not any("(edit" in str(m["content"]) for m in before)


def test_empty_exports_hold_no_messages(sim: str, target: CallbackTarget) -> None:
    set_faults(sim, callback_shape="inline-ndjson", empty_exports=1)
    export(sim, target.callback_url("empty"))
    [callback] = target.wait_for(1)
    assert _inline_messages(callback.body) == []
    assert set_faults(sim)["empty_exports"] == 0
