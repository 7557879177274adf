"""`check` against the real simulator and a real running service: it must not pass on a wrong
API URL, must say what it saw, and must prove the callback route is reachable."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.responses import HTMLResponse
from starlette.routing import Route

from simulator.app import create_app
from simulator.config import SimulatorConfig
from tests.servers import serve_in_thread
from tests.service import running_service

KEY = "check-key-0123"


@pytest.fixture
def upstream() -> Iterator[str]:
    with serve_in_thread(create_app(SimulatorConfig(api_key=KEY))) as url:
        yield url


def _check(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {
        "PATH": "",
        "ARCHIVER_API_KEY": KEY,
        "ARCHIVER_PUBLIC_URL": "https://archiver.example.com",
        "ARCHIVER_STORAGE_URL": f"file://{tmp_path}/archive",
        "ARCHIVER_LEDGER_URL": f"sqlite:///{tmp_path}/ledger.db",
    }
    return subprocess.run(
        [sys.executable, "-m", "archiver.cli", "check", *args],
        env=base | env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _failures(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in result.stdout.splitlines() if line.startswith("FAIL")]


def test_a_doubled_api_path_fails_and_says_what_was_seen(tmp_path: Path, upstream: str) -> None:
    result = _check(tmp_path, ARCHIVER_API_URL=f"{upstream}/api/v1")
    assert result.returncode == 1
    [failure] = _failures(result)
    assert failure.startswith("FAIL  API URL: ")
    assert "404" in failure and "not the platform's 401" in failure
    assert "/api/v1/api/v1/" in failure


def test_a_server_error_is_one_line_not_an_html_page(tmp_path: Path) -> None:
    async def broken(request: object) -> HTMLResponse:
        return HTMLResponse("<html>\n<body>\n<h1>Internal error</h1>\n</body>\n</html>", 500)

    app = Starlette(routes=[Route("/{path:path}", broken)])
    with serve_in_thread(app) as url:
        result = _check(tmp_path, ARCHIVER_API_URL=url)
    assert result.returncode == 1
    [failure] = _failures(result)
    assert "500 Internal Server Error (a text/html body)" in failure
    assert "<html>" not in result.stdout
    assert len(result.stdout.splitlines()) == 4


def test_a_rejected_key_fails_without_showing_it(tmp_path: Path, upstream: str) -> None:
    result = _check(tmp_path, ARCHIVER_API_URL=upstream, ARCHIVER_API_KEY="revoked-key-xyz")
    [failure] = _failures(result)
    assert failure.startswith("FAIL  API key: the platform rejected the key: 401")
    assert "revoked-key-xyz" not in result.stdout + result.stderr


def test_nothing_configured_lists_every_missing_setting_at_once(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "archiver.cli", "check"],
        env={"PATH": ""},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    [failure] = _failures(result)
    assert failure == (
        "FAIL  configuration: not set: ARCHIVER_API_URL, ARCHIVER_API_KEY (or "
        "ARCHIVER_API_KEY_FILE), ARCHIVER_PUBLIC_URL"
    )
    assert not (tmp_path / "archiver.db").exists()


def test_json_has_one_entry_per_check(tmp_path: Path, upstream: str) -> None:
    result = _check(tmp_path, "--json", ARCHIVER_API_URL=upstream)
    assert result.returncode == 0, result.stdout
    document = json.loads(result.stdout)
    assert document["ok"] is True
    names = [entry["name"] for entry in document["checks"]]
    assert names == ["configuration", "ledger", "object store (write, read, delete)", "API key"]


def test_public_url_probe_reaches_the_running_service(tmp_path: Path, upstream: str) -> None:
    (tmp_path / "service").mkdir()
    with running_service(tmp_path / "service") as service:
        reached = _check(
            tmp_path,
            "--public-url",
            ARCHIVER_API_URL=upstream,
            ARCHIVER_PUBLIC_URL=service.url,
            ARCHIVER_ALLOW_INSECURE_CALLBACKS="1",
        )
    assert reached.returncode == 0, reached.stdout
    assert f"ok    public URL reaches /callbacks: {service.url}/callbacks/" in reached.stdout


def test_public_url_pointing_elsewhere_fails(tmp_path: Path, upstream: str) -> None:
    missed = _check(
        tmp_path,
        "--public-url",
        ARCHIVER_API_URL=upstream,
        ARCHIVER_PUBLIC_URL=upstream,
        ARCHIVER_ALLOW_INSECURE_CALLBACKS="1",
    )
    assert missed.returncode == 1
    [failure] = _failures(missed)
    assert "not chat-archiver's 404" in failure
