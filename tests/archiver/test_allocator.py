import json
import sys
from pathlib import Path

import pytest

from archiver.allocator import MMAP_THRESHOLD_BYTES, fix_mmap_threshold
from tests.harness import running_service, service_env
from tests.servers import free_port

glibc_only = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="glibc's mallopt exists on Linux only"
)


@glibc_only
def test_the_mmap_threshold_is_fixed_on_glibc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    assert fix_mmap_threshold() == MMAP_THRESHOLD_BYTES


def test_an_operators_own_threshold_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "131072")
    assert fix_mmap_threshold() is None


@glibc_only
def test_serve_says_at_start_which_threshold_it_set(tmp_path: Path) -> None:
    env = service_env(
        api_url="http://127.0.0.1:9",
        ledger_url=f"sqlite:///{tmp_path}/ledger.db",
        storage_url=f"file://{tmp_path}/archive",
        port=free_port(),
    )
    with running_service(env, tmp_path / "serve.log") as service:
        logs = service.logs(tail=None)
    events = [json.loads(line) for line in logs.splitlines() if line.startswith("{")]
    configured = [event for event in events if event["event"] == "allocator_configured"]
    assert [event["mmap_threshold_bytes"] for event in configured] == [MMAP_THRESHOLD_BYTES]
