"""The shipped alert rules and dashboard against a live service's first scrape of /metrics.

promtool (Debian's `prometheus` package; `.ci/run` installs it) checks the rules, runs their
unit tests and lints the exposition; every series an alert or a panel names must be on the
very first scrape, at zero if nothing happened yet, or the alert could never fire.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from tests.service import RunningService, running_service

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yaml"
ALERTS_TEST = ROOT / "deploy" / "prometheus" / "alerts_test.yaml"
DASHBOARD = ROOT / "deploy" / "grafana" / "chat-archiver.json"
OPERATIONS = ROOT / "docs" / "operations.md"
# Series Prometheus makes itself, not the service.
PROMETHEUS_SERIES = {"up"}
SELECTOR = re.compile(r"\b([a-z_][a-z0-9_]*)\s*(\{[^}]*\})?")
MATCHER = re.compile(r'([a-z_]+)\s*=\s*"([^"]*)"')
PROMQL_WORDS = {
    "by",
    "without",
    "and",
    "or",
    "unless",
    "on",
    "ignoring",
    "offset",
    "bool",
    "group_left",
    "group_right",
    "le",
}


def _promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.skip("promtool is not installed (apt-get install prometheus); .ci/run installs it")
    return path


def _alerts() -> list[dict[str, str]]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def _selectors(expr: str) -> list[tuple[str, dict[str, str]]]:
    """(metric, exact label matchers) of every series an expression names."""
    found = []
    without_strings = re.sub(r'"[^"]*"', '""', expr)
    for match in SELECTOR.finditer(expr):
        name, labels = match.group(1), match.group(2) or ""
        start = match.start(1)
        if name in PROMQL_WORDS or not name.startswith(("archiver_", "up")):
            continue
        if without_strings[match.end(1) : match.end(1) + 1] == "(":
            continue
        if start and expr[start - 1] in "$.":
            continue
        found.append((name, dict(MATCHER.findall(labels))))
    return found


@pytest.fixture(scope="module")
def first_scrape(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """/metrics of a service that has just started and done nothing yet."""
    with running_service(tmp_path_factory.mktemp("alerts")) as service:
        yield _scrape(service)


def _scrape(service: RunningService) -> str:
    response = httpx.get(f"{service.url}/metrics", timeout=10)
    response.raise_for_status()
    return response.text


def _series(exposition: str) -> list[tuple[str, dict[str, str]]]:
    series = []
    for line in exposition.splitlines():
        if not line or line.startswith("#"):
            continue
        head = line.rsplit(" ", 1)[0]
        name, _, labels = head.partition("{")
        series.append((name, dict(MATCHER.findall(labels))))
    return series


def test_promtool_accepts_the_rules_and_their_unit_tests() -> None:
    promtool = _promtool()
    checked = subprocess.run(
        [promtool, "check", "rules", str(ALERTS)], capture_output=True, text=True, timeout=60
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = subprocess.run(
        [promtool, "test", "rules", str(ALERTS_TEST)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ALERTS_TEST.parent,
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_promtool_finds_no_problem_in_the_first_scrape(first_scrape: str) -> None:
    checked = subprocess.run(
        [_promtool(), "check", "metrics"],
        input=first_scrape,
        capture_output=True,
        text=True,
        timeout=60,
    )
    archiver_problems = [line for line in checked.stdout.splitlines() if "archiver_" in line]
    assert not archiver_problems, checked.stdout


def test_every_series_an_alert_uses_is_on_the_first_scrape(first_scrape: str) -> None:
    exposed = _series(first_scrape)
    for rule in _alerts():
        for name, labels in _selectors(rule["expr"]):
            if name in PROMETHEUS_SERIES:
                continue
            assert any(
                exposed_name == name and labels.items() <= exposed_labels.items()
                for exposed_name, exposed_labels in exposed
            ), f"{rule['alert']} uses {name}{labels}, which the first scrape does not have"


def test_every_series_the_dashboard_uses_is_on_the_first_scrape(first_scrape: str) -> None:
    exposed = {name for name, _ in _series(first_scrape)}
    dashboard = json.loads(DASHBOARD.read_text())
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            for name, _ in _selectors(target["expr"]):
                assert name in exposed, f"panel {panel['title']!r} uses {name}"


def test_every_alert_has_a_runbook_entry() -> None:
    runbook = OPERATIONS.read_text()
    for rule in _alerts():
        anchor = rule["annotations"]["runbook"].split("#")[1]
        assert anchor == rule["alert"].lower()
        assert f"### {rule['alert']}\n" in runbook, f"no runbook entry for {rule['alert']}"


def test_lag_counts_from_the_start_before_the_first_commit(first_scrape: str) -> None:
    values = {
        line.split(" ")[0]: float(line.split(" ")[1])
        for line in first_scrape.splitlines()
        if line.startswith(("archiver_lag_seconds ", "archiver_last_commit_timestamp_seconds "))
    }
    assert values["archiver_last_commit_timestamp_seconds"] == 0
    assert values["archiver_lag_seconds"] >= 0
