"""The deploy files, checked the way Docker, Kubernetes and systemd would read them.

Docker cannot run here, so compose is parsed and held against the settings table and the
command line; the Kubernetes manifests go through the API schemas (kubernetes-validate) and the
"restricted" Pod Security Standard; the systemd unit through `systemd-analyze` where it exists.
"""

from __future__ import annotations

import fnmatch
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from archiver.cli import build_parser
from archiver.commands.serve import HTTP_DRAIN_SECONDS
from archiver.service import SHUTDOWN_TIMEOUT
from archiver.settings import load_settings, setting_names
from simulator.__main__ import parse_args as parse_simulator_args

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
# What /readyz promises: it answers within this bound whatever its dependencies do.
READYZ_BOUND_SECONDS = 2.0
# SIGTERM to exit: HTTP drain, then the window in hand.
GRACEFUL_STOP_SECONDS = HTTP_DRAIN_SECONDS + SHUTDOWN_TIMEOUT
KNOWN_SETTINGS = set(setting_names())


def _compose() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def _services() -> dict[str, dict[str, Any]]:
    return _compose()["services"]


def _archiver_services() -> dict[str, dict[str, Any]]:
    """Services that run the chat-archiver image's own entry point."""
    return {
        name: service
        for name, service in _services().items()
        if service.get("image") == "chat-archiver:local" and "entrypoint" not in service
    }


# compose


def test_compose_sets_only_settings_the_service_knows() -> None:
    for name, service in _services().items():
        unknown = {
            key
            for key in service.get("environment", {})
            if key.startswith("ARCHIVER_") and key not in KNOWN_SETTINGS
        }
        assert not unknown, f"{name} sets {unknown}, which no setting reads"


def test_compose_archiver_settings_load(tmp_path: Path) -> None:
    key_file = tmp_path / "api_key"
    key_file.write_text("a-key\n")
    for name, service in _services().items():
        env = {k: str(v) for k, v in service.get("environment", {}).items()}
        if not any(key.startswith("ARCHIVER_") for key in env):
            continue
        if "ARCHIVER_API_KEY_FILE" in env:
            env["ARCHIVER_API_KEY_FILE"] = str(key_file)
        settings = load_settings(env)
        settings.require_upstream()
        assert settings.storage_url.startswith("s3://"), name
        assert settings.ledger_url.startswith("postgresql+psycopg://archiver:archiver@postgres:")


def test_compose_commands_are_ones_the_cli_accepts() -> None:
    parser = build_parser()
    for service in _archiver_services().values():
        command = service.get("command", ["serve"])
        parser.parse_args(command if isinstance(command, list) else shlex.split(command))
    backfill = _services()["demo-backfill"]["entrypoint"][-1]
    assert backfill.startswith("chat-archiver backfill --since ")
    simulator = _services()["simulator"]
    _, config = parse_simulator_args(simulator["command"])
    assert config.allow_insecure_callbacks


def test_compose_demo_profile_points_the_service_at_the_simulator() -> None:
    services = _services()
    simulator_port = parse_simulator_args(services["simulator"]["command"])[0].port
    demo = services["archiver-demo"]
    assert "demo" in demo["profiles"] and "demo" in services["simulator"]["profiles"]
    assert demo["environment"]["ARCHIVER_API_URL"] == f"http://simulator:{simulator_port}"
    assert demo["environment"]["ARCHIVER_PUBLIC_URL"] == "http://archiver-demo:8080"
    assert demo["depends_on"]["simulator"]["condition"] == "service_healthy"
    # the live service does not start with the demo, and so needs no key file for it
    assert "demo" not in services["archiver"]["profiles"]


def test_compose_waits_for_health_and_restarts() -> None:
    services = _services()
    for name, service in services.items():
        for dependency, rule in service.get("depends_on", {}).items():
            assert isinstance(rule, dict), f"{name} starts before {dependency} is ready"
            condition = rule["condition"]
            if condition == "service_healthy":
                assert "healthcheck" in services[dependency], dependency
            else:
                assert condition == "service_completed_successfully", (name, dependency)
                assert services[dependency]["restart"] == "no"
        assert "restart" in service, f"{name} has no restart policy"
    for name in ("postgres", "minio", "archiver", "archiver-demo", "simulator"):
        assert services[name]["restart"] == "unless-stopped"
        assert not services[name].get("healthcheck", {}).get("disable"), name


def test_compose_creates_the_bucket_the_service_writes_to() -> None:
    services = _services()
    script = " ".join(services["create-bucket"]["entrypoint"])
    created = set(re.findall(r"mc mb --ignore-existing local/([a-z0-9.-]+)", script))
    for name in ("archiver", "archiver-demo"):
        bucket = services[name]["environment"]["ARCHIVER_STORAGE_URL"].split("/")[2]
        assert bucket in created
        assert services[name]["depends_on"]["create-bucket"]["condition"] == (
            "service_completed_successfully"
        )


def test_compose_secret_file_is_documented_and_never_committed() -> None:
    secret = _compose()["secrets"]["archiver_api_key"]["file"]
    text = (DEPLOY / "compose.yaml").read_text()
    assert f"deploy/{Path(secret).name}" in text.split("services:")[0]
    assert "/deploy/api_key.txt" in (ROOT / ".gitignore").read_text().splitlines()


def _docker_ignored(path: str, rules: list[str]) -> bool:
    ignored = False
    for rule in rules:
        negated = rule.startswith("!")
        pattern = rule.removeprefix("!").rstrip("/")
        if fnmatch.fnmatch(path, pattern) or path.startswith(pattern + "/"):
            ignored = not negated
    return ignored


def test_dockerignore_keeps_the_venv_out_and_the_sources_in() -> None:
    rules = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for unwanted in (".venv", ".git", "archive", "archiver.db", "tests", "deploy/api_key.txt"):
        assert _docker_ignored(unwanted, rules), unwanted
    copied = re.findall(r"^COPY (?!--from)(.+) \S+$", (DEPLOY / "Dockerfile").read_text(), re.M)
    for sources in copied:
        for source in sources.split():
            assert not _docker_ignored(source, rules), source


# Kubernetes


def _manifests() -> list[tuple[str, dict[str, Any]]]:
    documents = []
    for path in sorted(KUBERNETES.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if document:
                documents.append((path.name, document))
    return documents


def _of_kind(kind: str) -> dict[str, Any]:
    [found] = [document for _, document in _manifests() if document["kind"] == kind]
    return found


def test_kubernetes_manifests_match_the_api_schemas() -> None:
    import kubernetes_validate

    for name, document in _manifests():
        if document["kind"] == "Kustomization":
            continue
        kubernetes_validate.validate(document, "1.30.0", strict=True)
        assert document["metadata"]["name"] == "chat-archiver", name


def test_kustomization_applies_everything_but_the_example_secret() -> None:
    listed = set(_of_kind("Kustomization")["resources"])
    files = {p.name for p in KUBERNETES.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == files - {"secret.example.yaml"}


def test_pods_meet_the_restricted_pod_security_standard() -> None:
    pod = _of_kind("Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert not pod.get("hostNetwork") and not pod.get("hostPID") and not pod.get("hostIPC")
    for volume in pod["volumes"]:
        assert set(volume) - {"name"} <= {"emptyDir", "secret", "configMap", "projected"}
    for container in pod["containers"]:
        context = container["securityContext"]
        assert context["allowPrivilegeEscalation"] is False
        assert context["capabilities"]["drop"] == ["ALL"]
        assert not context["capabilities"].get("add")
        assert context.get("privileged", False) is False
        assert context["seccompProfile"]["type"] in ("RuntimeDefault", "Localhost")
        assert context["readOnlyRootFilesystem"] is True


def test_termination_grace_covers_prestop_and_the_graceful_stop() -> None:
    pod = _of_kind("Deployment")["spec"]["template"]["spec"]
    [container] = pod["containers"]
    command = container["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    pre_stop = float(command[1])
    assert pod["terminationGracePeriodSeconds"] >= pre_stop + GRACEFUL_STOP_SECONDS + 3


def test_probes_wait_longer_than_readyz_takes() -> None:
    [container] = _of_kind("Deployment")["spec"]["template"]["spec"]["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["readinessProbe"]["timeoutSeconds"] > READYZ_BOUND_SECONDS
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["livenessProbe"]["timeoutSeconds"] >= 1


def test_secrets_live_apart_from_the_configmap() -> None:
    config = _of_kind("ConfigMap")["data"]
    assert set(config) <= KNOWN_SETTINGS
    for key, value in config.items():
        assert not re.search(r"(API_KEY|PASSWORD|TOKEN)$", key), key
        assert "@" not in str(value), key
    pod = _of_kind("Deployment")["spec"]["template"]["spec"]
    [container] = pod["containers"]
    secret_refs = {
        entry["valueFrom"]["secretKeyRef"]["key"]
        for entry in container["env"]
        if "valueFrom" in entry
    }
    mounted = {
        item["key"] for v in pod["volumes"] if "secret" in v for item in v["secret"]["items"]
    }
    assert secret_refs | mounted == set(_of_kind("Secret")["stringData"])
    assert config["ARCHIVER_API_KEY_FILE"].startswith(
        next(m["mountPath"] for m in container["volumeMounts"] if m["name"] == "secret")
    )


def test_pdb_and_service_account_select_the_pods() -> None:
    deployment = _of_kind("Deployment")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    pdb = _of_kind("PodDisruptionBudget")["spec"]
    assert pdb["selector"]["matchLabels"].items() <= labels.items()
    assert pdb["minAvailable"] < deployment["spec"]["replicas"]
    account = _of_kind("ServiceAccount")
    pod = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == account["metadata"]["name"]
    assert "eks.amazonaws.com/role-arn" in (KUBERNETES / "serviceaccount.yaml").read_text()


# systemd


def _unit() -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    for line in (DEPLOY / "chat-archiver.service").read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            values.setdefault(key, []).append(value)
    return values


def test_systemd_unit_does_not_restart_on_bad_settings() -> None:
    unit = _unit()
    assert "2" in unit["RestartPreventExitStatus"][0].split()
    assert unit["Restart"] == ["on-failure"]
    assert float(unit["TimeoutStopSec"][0]) >= GRACEFUL_STOP_SECONDS + 3
    assert unit["DynamicUser"] == ["yes"] and unit["StateDirectory"] == ["chat-archiver"]
    environment = dict(entry.split("=", 1) for entry in unit["Environment"])
    assert set(environment) <= KNOWN_SETTINGS
    assert "/var/lib/chat-archiver/" in environment["ARCHIVER_LEDGER_URL"]
    for line in (DEPLOY / "chat-archiver.env").read_text().splitlines():
        key = line.lstrip("# ").split("=", 1)[0]
        if key.startswith("ARCHIVER_"):
            assert key in KNOWN_SETTINGS, key


@pytest.fixture
def unit_here(tmp_path: Path) -> Path:
    """The unit with ExecStart pointing at this checkout's chat-archiver, which exists here."""
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed; the unit is checked by the tests above only")
    executable = Path(shutil.which("chat-archiver") or "")
    if not executable.is_file():
        executable = Path(sys.executable).with_name("chat-archiver")
    text = (DEPLOY / "chat-archiver.service").read_text()
    unit = tmp_path / "chat-archiver.service"
    unit.write_text(text.replace("/opt/chat-archiver/.venv/bin/chat-archiver", str(executable)))
    return unit


def test_systemd_analyze_verify_accepts_the_unit(unit_here: Path) -> None:
    result = subprocess.run(
        ["systemd-analyze", "verify", str(unit_here)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "chat-archiver.service" not in result.stderr, result.stderr


def test_systemd_analyze_security_scores_the_unit_at_most_3(unit_here: Path) -> None:
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", str(unit_here)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    match = re.search(r"Overall exposure level for \S+: ([\d.]+)", result.stdout)
    assert match, result.stdout + result.stderr
    assert float(match.group(1)) <= 3.0, result.stdout
