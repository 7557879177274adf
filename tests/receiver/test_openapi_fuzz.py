"""/openapi.json against the live service: it names every route, and schemathesis (its own CLI,
every check) finds no 5xx and no answer the document does not describe."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.routing import Route

from receiver.app import create_app
from receiver.intake import Intake, IntakeLimits
from storage.layout import Window
from tests.service import RunningService, running_service

ST = str(Path(sys.executable).parent / "st")
CALLBACK_PATH = "/callbacks/{export_id}/{token}"
MAX_EXAMPLES = 25


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningService]:
    with running_service(tmp_path_factory.mktemp("openapi")) as running:
        yield running


def _document(service: RunningService) -> dict[str, Any]:
    answer = httpx.get(f"{service.url}/openapi.json")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/json"
    document: dict[str, Any] = answer.json()
    return document


def _schemathesis(
    service: RunningService, work: Path, *options: str, config: Path | None = None
) -> tuple[subprocess.CompletedProcess[str], list[dict[str, Any]]]:
    """`st run` with every check and phase, bounded; returns its result and the exchanges."""
    har = work / "run.har"
    result = subprocess.run(
        [
            ST,
            *(["--config-file", str(config)] if config else []),
            "run",
            f"{service.url}/openapi.json",
            "--checks",
            "all",
            "--mode",
            "all",
            "--max-examples",
            str(MAX_EXAMPLES),
            "--workers",
            "1",
            "--request-timeout",
            "30",
            "--generation-database",
            "none",
            "--no-color",
            "--report",
            "har",
            "--report-har-path",
            str(har),
            *options,
        ],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=300,
    )
    entries = json.loads(har.read_text())["log"]["entries"] if har.exists() else []
    return result, entries


def _documented(document: dict[str, Any], entry: dict[str, Any], base: str) -> set[str]:
    """The status codes the document allows for the exchange's path and method."""
    path = entry["request"]["url"].removeprefix(base).split("?")[0]
    method = entry["request"]["method"].lower()
    if path.startswith("/callbacks/"):
        path = CALLBACK_PATH
    operation = document["paths"].get(path, {}).get(method)
    return set(operation["responses"]) if operation else {"404", "405"}


def test_the_document_describes_every_route_the_app_serves(service: RunningService) -> None:
    async def ready() -> list[str]:
        return []

    app = create_app(Intake(service.ledger, service.store, IntakeLimits()), ready)
    served = {
        (method.lower(), route.path)
        for route in app.routes
        if isinstance(route, Route)
        for method in route.methods or ()
        if method != "HEAD"
    }
    document = _document(service)
    described = {(method, path) for path, item in document["paths"].items() for method in item}
    assert described == served
    assert document["openapi"].startswith("3.")
    parameters = document["paths"][CALLBACK_PATH]["post"]["parameters"]
    assert {p["name"] for p in parameters} == {"export_id", "token"}


def test_fuzzed_requests_get_no_server_error_and_only_documented_answers(
    service: RunningService, tmp_path: Path
) -> None:
    result, entries = _schemathesis(service, tmp_path)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert entries, "schemathesis sent no request"
    document = _document(service)
    statuses = Counter(entry["response"]["status"] for entry in entries)
    assert not [status for status in statuses if status >= 500], statuses
    for entry in entries:
        assert str(entry["response"]["status"]) in _documented(document, entry, service.url)
    assert httpx.get(f"{service.url}/healthz").status_code == 200


def test_fuzzed_callbacks_with_a_live_token_are_each_stored_and_answered(
    service: RunningService, tmp_path: Path
) -> None:
    attempt = service.export_for(
        Window(datetime(2026, 4, 1, tzinfo=UTC), datetime(2026, 4, 2, tzinfo=UTC))
    )
    config = tmp_path / "schemathesis.toml"
    config.write_text(
        "[parameters]\n"
        f'"path.export_id" = "{attempt.export_id}"\n'
        f'"path.token" = "{attempt.token}"\n'
    )
    result, entries = _schemathesis(
        service, tmp_path, "--include-path", CALLBACK_PATH, config=config
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    posts = [entry for entry in entries if entry["request"]["method"] == "POST"]
    statuses = Counter(entry["response"]["status"] for entry in posts)
    assert statuses[200] >= MAX_EXAMPLES // 2 and not [s for s in statuses if s >= 500], statuses
    callbacks = service.ledger.callbacks(attempt.export_id)
    raw = [
        info.key
        for info in service.store.list(f"_raw/{attempt.export_id}/")
        if info.key.endswith(".body")
    ]
    assert len(callbacks) == len(raw) == statuses[200]
