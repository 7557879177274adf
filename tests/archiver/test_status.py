"""`chat-archiver status [--json]`: windows by state, last committed, lag and every problem."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from archiver.cli import main
from scheduler.planner import align_down
from scheduler.requester import KEY_REJECTED, key_fingerprint
from simulator.app import create_app as create_simulator
from simulator.config import SimulatorConfig
from simulator.corpus import MessageCorpus
from storage.layout import Window
from storage.ledger import Ledger
from storage.schema import STREAM
from tests.harness import API_KEY, running_service, service_env, wait_for_states
from tests.servers import free_port, serve_in_thread

HOUR = timedelta(hours=1)
LEASE = timedelta(minutes=5)
SEED = 5
PER_DAY = 480


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _status(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """The command as a user runs it: a process of its own."""
    return subprocess.run(
        [sys.executable, "-m", "archiver.cli", "status", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


class Status:
    """`main(["status", ...])` in this process, with only the given settings in the environment
    (quicker than a process per call, for the tests that run it many times)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
        self._monkeypatch = monkeypatch
        self._capsys = capsys
        for name in list(os.environ):
            if name.startswith("ARCHIVER_"):
                monkeypatch.delenv(name)

    def __call__(self, ledger_url: str, *args: str, api_key: str = API_KEY) -> str:
        self._monkeypatch.setenv("ARCHIVER_LEDGER_URL", ledger_url)
        self._monkeypatch.setenv("ARCHIVER_API_KEY", api_key)
        self._capsys.readouterr()
        assert main(["status", *args]) == 0
        return self._capsys.readouterr().out


@pytest.fixture
def status(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Status:
    return Status(monkeypatch, capsys)


class Windows:
    """Drives windows through the real ledger to each state `status` reports."""

    def __init__(self, ledger: Ledger, base: datetime) -> None:
        self.ledger = ledger
        self.base = base

    def window(self, n: int) -> Window:
        return Window(self.base + n * HOUR, self.base + (n + 1) * HOUR)

    def request(self, n: int) -> str:
        window = self.window(n)
        self.ledger.plan(STREAM, [window])
        [attempt] = self.ledger.claim_due(
            STREAM, datetime.now(UTC), limit=1, callback_timeout=HOUR, max_attempts=3
        )
        assert attempt.window == window
        return attempt.export_id

    def receive(self, n: int) -> None:
        export_id = self.request(n)
        self.ledger.record_callback(
            export_id=export_id,
            callback_id=f"cb-{n}",
            received_at=datetime.now(UTC),
            raw_key=f"_raw/{export_id}/cb-{n}.body",
            body_sha256=f"{n:064d}",
            size=10,
        )

    def commit(self, n: int, rows: int) -> None:
        self.receive(n)
        claim = self.ledger.claim_received("status-test", datetime.now(UTC), LEASE)
        assert claim is not None
        self.ledger.commit(
            claim, rows=rows, rejects=0, manifest_key=f"m/{n}.json", now=datetime.now(UTC)
        )

    def quarantine(self, n: int, reason: str) -> None:
        self.receive(n)
        claim = self.ledger.claim_received("status-test", datetime.now(UTC), LEASE)
        assert claim is not None
        self.ledger.quarantine(claim, reason=reason, now=datetime.now(UTC))

    def fail(self, n: int, reason: str) -> None:
        self.ledger.request_failed(self.request(n), reason=reason, retry_at=None)


@pytest.fixture
def windows(ledger: Ledger) -> Windows:
    return Windows(ledger, align_down(datetime.now(UTC), HOUR) - 10 * HOUR)


def test_json_lists_states_last_committed_oldest_uncommitted_lag_and_problems(
    windows: Windows, ledger_url: str, status: Status
) -> None:
    windows.commit(0, rows=12)
    windows.fail(1, "The export period exceeds the maximum of 6 months.")
    windows.commit(2, rows=7)
    windows.quarantine(3, "unrecognised callback: not JSON, CSV or an archive")
    windows.request(4)
    windows.ledger.plan(STREAM, [windows.window(5)])

    before = datetime.now(UTC)
    document = json.loads(status(ledger_url, "--json"))

    assert document["by_state"] == {
        "planned": 1,
        "requested": 1,
        "received": 0,
        "committed": 2,
        "failed": 1,
        "quarantined": 1,
        "split": 0,
        "replaced": 0,
    }
    last = document["last_committed"]
    assert (last["window_start"], last["window_end"]) == (
        _iso(windows.window(2).start),
        _iso(windows.window(2).end),
    )
    assert last["rows"] == 7 and last["state"] == "committed"
    assert document["oldest_uncommitted"]["window_start"] == _iso(windows.window(1).start)
    assert document["oldest_uncommitted"]["state"] == "failed"
    expected_lag = (before - windows.window(2).end).total_seconds()
    assert expected_lag - 1 <= document["lag_seconds"] <= expected_lag + 60
    assert document["api_key_rejected"] is False
    problems = [
        (entry["window_start"], entry["state"], entry["reason"], entry["attempts"])
        for entry in document["problems"]
    ]
    assert problems == [
        (
            _iso(windows.window(1).start),
            "failed",
            "The export period exceeds the maximum of 6 months.",
            0,
        ),
        (
            _iso(windows.window(3).start),
            "quarantined",
            "unrecognised callback: not JSON, CSV or an archive",
            1,
        ),
    ]
    assert all(entry["export_id"] for entry in document["problems"])


def test_text_shows_the_same_as_a_table_with_each_problem_and_its_reason(
    windows: Windows, ledger_url: str, status: Status
) -> None:
    windows.commit(0, rows=3)
    windows.fail(1, "refused for good")
    windows.quarantine(2, "undecodable export file: bad gzip")

    text = status(ledger_url)
    lines = text.splitlines()
    table = {line.split()[0]: int(line.split()[1]) for line in lines[1:9]}
    assert lines[0] == "Windows by state"
    assert table == {
        "planned": 0,
        "requested": 0,
        "received": 0,
        "committed": 1,
        "failed": 1,
        "quarantined": 1,
        "split": 0,
        "replaced": 0,
    }
    assert f"Last committed      {_iso(windows.window(0).start)}" in text
    assert f"Oldest uncommitted  {_iso(windows.window(1).start)}" in text
    assert "Lag                 9h" in text
    assert "Problems (2)" in text
    failed = next(line for line in lines if line.strip().startswith(_iso(windows.window(1).start)))
    assert "failed" in failed and failed.endswith("refused for good")
    quarantined = next(
        line for line in lines if line.strip().startswith(_iso(windows.window(2).start))
    )
    assert "quarantined" in quarantined
    assert quarantined.endswith("undecodable export file: bad gzip")
    assert API_KEY not in text


def test_an_empty_ledger_has_no_last_window_and_no_lag(ledger_url: str, status: Status) -> None:
    Ledger.open(ledger_url).close()
    document = json.loads(status(ledger_url, "--json"))
    assert document["last_committed"] is None
    assert document["oldest_uncommitted"] is None
    assert document["lag_seconds"] is None
    assert document["problems"] == []
    assert set(document["by_state"].values()) == {0}
    assert "Problems            none" in status(ledger_url)


def test_a_rejected_key_is_reported_without_the_key_until_it_changes(
    ledger: Ledger, ledger_url: str, status: Status
) -> None:
    ledger.set_meta(KEY_REJECTED, key_fingerprint(API_KEY))
    assert json.loads(status(ledger_url, "--json"))["api_key_rejected"] is True
    text = status(ledger_url)
    assert "REJECTED" in text and API_KEY not in text
    document = json.loads(status(ledger_url, "--json", api_key="a-new-key-0123456789"))
    assert document["api_key_rejected"] is False


def test_status_reports_what_serve_did_with_a_failure_notice_and_an_undecodable_callback(
    tmp_path: Path,
) -> None:
    config = SimulatorConfig(
        api_key=API_KEY,
        seed=SEED,
        messages_per_day=PER_DAY,
        allow_insecure_callbacks=True,
        drop_callbacks=True,
    )
    start = align_down(datetime.now(UTC), HOUR) - 3 * HOUR
    good, notice, garbage = (Window(start + i * HOUR, start + (i + 1) * HOUR) for i in range(3))
    with serve_in_thread(create_simulator(config)) as simulator_url:
        env = service_env(
            api_url=simulator_url,
            ledger_url=f"sqlite:///{tmp_path}/ledger.db",
            storage_url=f"file://{tmp_path}/archive",
            port=free_port(),
            ARCHIVER_WINDOW="1h",
            ARCHIVER_START=start.isoformat(),
            ARCHIVER_MAX_ATTEMPTS="1",
        )
        with running_service(env, tmp_path / "serve.log"):
            ledger = Ledger.open(env["ARCHIVER_LEDGER_URL"])
            wait_for_states(ledger, 3, states=("requested",))
            sent = httpx.get(f"{simulator_url}/_sim/state").json()["export_requests"]
            urls = {datetime.fromisoformat(e["rangeStart"]): e["callbackUrl"] for e in sent}
            messages = list(MessageCorpus(SEED, PER_DAY).between(good.start, good.end))
            inline = "".join(json.dumps(message) + "\n" for message in messages)
            bodies = {
                good: inline.encode(),
                notice: b'{"status": "failed", "error": "export job crashed"}',
                garbage: b"\x00\x01 this is not an export \xff",
            }
            for window, body in bodies.items():
                answer = httpx.post(urls[window.start], content=body)
                assert answer.json() == {"status": "accepted"}
            wait_for_states(ledger, 3, states=("committed", "failed", "quarantined"))
            ledger.close()
        document = json.loads(_status(env, "--json").stdout)
        text = _status(env).stdout

    assert document["by_state"]["committed"] == 1
    assert document["last_committed"]["rows"] == len(messages) > 0
    assert document["oldest_uncommitted"]["window_start"] == _iso(notice.start)
    problems = {entry["window_start"]: entry for entry in document["problems"]}
    assert set(problems) == {_iso(notice.start), _iso(garbage.start)}
    assert problems[_iso(notice.start)]["state"] == "failed"
    assert "export job crashed" in problems[_iso(notice.start)]["reason"]
    assert problems[_iso(garbage.start)]["state"] == "quarantined"
    assert problems[_iso(garbage.start)]["reason"]
    assert "export job crashed" in text and "quarantined" in text
    assert API_KEY not in text + json.dumps(document)


def test_status_lists_in_flight_windows_with_attempt_export_and_deadline(
    ledger_url: str, windows: Windows, status: Status
) -> None:
    waiting = windows.request(0)
    windows.receive(1)
    document = json.loads(status(ledger_url, "--json"))
    in_flight = {entry["window_start"]: entry for entry in document["in_flight"]}
    assert list(in_flight) == [_iso(windows.window(0).start), _iso(windows.window(1).start)]
    first = in_flight[_iso(windows.window(0).start)]
    assert (first["state"], first["attempts"], first["export_id"]) == ("requested", 1, waiting)
    assert first["deadline_at"] is not None
    assert in_flight[_iso(windows.window(1).start)]["state"] == "received"
    text = status(ledger_url)
    assert "In flight (2)" in text and waiting in text and first["deadline_at"] in text


def test_windows_lists_by_state_and_start(
    ledger_url: str,
    windows: Windows,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    windows.commit(0, rows=5)
    windows.request(1)
    windows.ledger.plan(STREAM, [windows.window(2)])
    for name in list(os.environ):
        if name.startswith("ARCHIVER_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("ARCHIVER_LEDGER_URL", ledger_url)
    capsys.readouterr()
    assert main(["windows", "--state", "requested", "--state", "planned", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(e["window_start"], e["state"]) for e in listed] == [
        (_iso(windows.window(1).start), "requested"),
        (_iso(windows.window(2).start), "planned"),
    ]
    since = _iso(windows.window(1).start)
    assert main(["windows", "--since", since]) == 0
    text = capsys.readouterr().out
    assert text.splitlines()[-1] == "2 window(s)" and "committed" not in text
