"""Command-line conventions: version, help with examples, options in either place, quiet pipes."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from archiver.cli import build_parser
from storage.ledger import Ledger


def _cli(
    cwd: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "archiver.cli", *args],
        env={"PATH": "", **(env or {})},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    found: dict[str, argparse.ArgumentParser] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found[name] = sub
                found.update({f"{name} {k}": v for k, v in _subparsers(sub).items()})
    return found


def test_version_comes_from_the_installed_package(tmp_path: Path) -> None:
    result = _cli(tmp_path, "--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"chat-archiver {metadata.version('chat-archiver')}"


def test_every_command_has_an_example_and_every_option_a_help_text() -> None:
    commands = _subparsers(build_parser())
    assert {"serve", "demo", "export", "backfill", "status", "check", "config show"} <= set(
        commands
    )
    for name, parser in commands.items():
        if name == "config":
            continue
        assert "examples:\n  chat-archiver " in (parser.epilog or ""), name
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                continue
            assert action.help, f"{name} {action.option_strings or action.dest} has no help"


def test_config_is_accepted_after_the_command_too(tmp_path: Path) -> None:
    config = tmp_path / "archiver.toml"
    config.write_text('window = "1h"\n')
    for args in (
        ["--config", str(config), "config", "show"],
        ["config", "show", "--config", str(config)],
    ):
        result = _cli(tmp_path, *args, "--json")
        assert result.returncode == 0, result.stderr
        window = json.loads(result.stdout)["ARCHIVER_WINDOW"]
        assert window == {"value": "1h", "source": f"config file {config}"}


def test_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    pipeline = subprocess.run(
        f"{sys.executable} -m archiver.cli config show | head -n 1",
        shell=True,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "ARCHIVER_API_KEY": "k"},
    )
    assert pipeline.stdout.startswith("ARCHIVER_")
    assert "Traceback" not in pipeline.stderr and "BrokenPipe" not in pipeline.stderr


@pytest.mark.parametrize("command", [["status"], ["replay", "--quarantined"]])
def test_read_only_commands_refuse_a_missing_ledger(tmp_path: Path, command: list[str]) -> None:
    result = _cli(tmp_path, *command)
    assert result.returncode == 2
    assert result.stderr.startswith("chat-archiver: error: ARCHIVER_LEDGER_URL: no ledger at ")
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "archiver.db").exists()


def test_status_reads_a_ledger_that_exists(tmp_path: Path) -> None:
    Ledger.open(f"sqlite:///{tmp_path}/archiver.db").close()
    assert _cli(tmp_path, "status").returncode == 0


def test_a_typo_warns_with_the_nearest_setting_and_strict_stops(tmp_path: Path) -> None:
    Ledger.open(f"sqlite:///{tmp_path}/archiver.db").close()
    env = {"ARCHIVER_STORAGE_ULR": "s3://lake/chat"}
    warned = _cli(tmp_path, "status", env=env)
    assert warned.returncode == 0
    assert warned.stderr.strip() == (
        "chat-archiver: warning: ignored: ARCHIVER_STORAGE_ULR is not a setting; "
        "did you mean ARCHIVER_STORAGE_URL?"
    )
    strict = _cli(tmp_path, "status", "--strict", env=env)
    assert strict.returncode == 2
    assert "did you mean ARCHIVER_STORAGE_URL?" in strict.stderr


def test_config_show_names_sources_and_masks_secrets(tmp_path: Path) -> None:
    config = tmp_path / "archiver.toml"
    config.write_text('settle_delay = "30m"\nstorage_ulr = "s3://x"\n')
    env = {
        "ARCHIVER_API_KEY": "top-secret-key",
        "ARCHIVER_LEDGER_URL": "postgresql://archiver:hunter2@db/archiver",
    }
    result = _cli(tmp_path, "config", "show", "--json", "--config", str(config), env=env)
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["ARCHIVER_API_KEY"] == {"value": "*** (set)", "source": "environment"}
    assert shown["ARCHIVER_SETTLE_DELAY"] == {"value": "30m", "source": f"config file {config}"}
    assert shown["ARCHIVER_WINDOW"] == {"value": "1d", "source": "default"}
    assert "hunter2" not in result.stdout and "top-secret-key" not in result.stdout
    assert "unknown key 'storage_ulr'; did you mean 'storage_url'?" in result.stderr
