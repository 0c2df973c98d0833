"""Static checks of the deployment files in deploy/ (no Docker or cluster needed).

Every environment variable handed to a Gardien container, in compose or in Kubernetes,
must be a setting that ``shared.settings.Settings`` accepts: a typo there would be
silently ignored at runtime (``extra="ignore"``), so it is caught here instead.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from shared.settings import SERVICE_NAMES, Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
DOCKERFILE = DEPLOY / "Dockerfile"
COMPOSE_FILE = DEPLOY / "compose.yaml"
K8S_DIR = DEPLOY / "k8s"
KUSTOMIZATION = K8S_DIR / "kustomization.yaml"

GARDIEN_IMAGE = "gardien"
LONG_RUNNING = (*SERVICE_NAMES, "api")
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "ReplicaSet"}


# --------------------------------------------------------------------------- helpers


def accepted_settings() -> set[str]:
    """Environment variable names Settings reads, derived from the model itself."""
    prefix = Settings.model_config.get("env_prefix") or ""
    return {f"{prefix}{name}".upper() for name in Settings.model_fields}


def unknown(names: Iterable[str]) -> list[str]:
    return sorted(set(names) - accepted_settings())


def load_compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(data, dict), "compose.yaml must be a mapping"
    return data


def load_k8s_docs() -> list[tuple[str, dict[str, Any]]]:
    docs = []
    for path in sorted(K8S_DIR.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc is not None:
                assert isinstance(doc, dict), f"{path.name}: document is not a mapping"
                docs.append((path.name, doc))
    return docs


def is_gardien_build(service: dict[str, Any]) -> bool:
    build = service.get("build")
    if build is None:
        return False
    if isinstance(build, str):  # short form: context only, default Dockerfile name
        return False
    dockerfile = Path(build.get("context", ".")) / build.get("dockerfile", "Dockerfile")
    return dockerfile.as_posix().endswith("deploy/Dockerfile")


def gardien_compose_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: svc
        for name, svc in (compose.get("services") or {}).items()
        if isinstance(svc, dict) and is_gardien_build(svc)
    }


def compose_env_names(service: dict[str, Any]) -> set[str]:
    env = service.get("environment") or {}
    if isinstance(env, dict):
        return set(env)
    return {str(item).split("=", 1)[0] for item in env}


def compose_command(service: dict[str, Any]) -> list[str]:
    command = service.get("command") or []
    return shlex.split(command) if isinstance(command, str) else [str(c) for c in command]


def pod_spec(doc: dict[str, Any]) -> dict[str, Any] | None:
    if doc.get("kind") not in WORKLOAD_KINDS:
        return None
    spec = doc.get("spec") or {}
    if doc["kind"] == "CronJob":
        spec = (spec.get("jobTemplate") or {}).get("spec") or {}
    return (spec.get("template") or {}).get("spec") or {}


def is_gardien_image(image: str) -> bool:
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return last.split(":", 1)[0] == GARDIEN_IMAGE


def gardien_k8s_containers(
    docs: list[tuple[str, dict[str, Any]]],
) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for filename, doc in docs:
        spec = pod_spec(doc)
        if spec is None:
            continue
        for container in [*spec.get("initContainers", []), *spec.get("containers", [])]:
            if is_gardien_image(str(container.get("image", ""))):
                yield filename, f"{doc['kind']}/{doc['metadata']['name']}", container


def k8s_container_env_names(
    container: dict[str, Any], configmaps: dict[str, dict[str, Any]]
) -> set[str]:
    names = {entry["name"] for entry in container.get("env", [])}
    for source in container.get("envFrom", []):
        prefix = source.get("prefix", "")
        if "configMapRef" in source:
            ref = source["configMapRef"]
            if ref["name"] not in configmaps:
                assert ref.get("optional"), f"envFrom ConfigMap {ref['name']!r} is not defined"
                continue
            names |= {prefix + key for key in configmaps[ref["name"]].get("data") or {}}
        elif "secretRef" in source:
            # Secrets are created out of band (credentials), so their keys cannot be
            # checked here; they must at least be optional so the manifests stand alone.
            assert source["secretRef"].get("optional"), "envFrom Secrets must be optional"
    return names


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    logical: list[str] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    result = []
    for line in logical:
        instruction, _, args = line.partition(" ")
        result.append((instruction.upper(), args.strip()))
    return result


# --------------------------------------------------------------------------- checker self-test


def test_checker_rejects_unknown_variables() -> None:
    """The env-var check must be able to fail: a typo'd name is reported."""
    fake_compose = {
        "services": {
            "intake": {
                "build": {"context": "..", "dockerfile": "deploy/Dockerfile"},
                "environment": {"KAFKA_BOOTSTRAP_SERVERS": "kafka:9092", "GARDIEN_LOG_LEVLE": "x"},
            },
            "kafka": {"image": "apache/kafka", "environment": {"KAFKA_NODE_ID": "1"}},
        }
    }
    services = gardien_compose_services(fake_compose)
    assert set(services) == {"intake"}
    assert unknown(compose_env_names(services["intake"])) == ["GARDIEN_LOG_LEVLE"]

    container = {
        "image": "registry.example.com/gardien:1.0",
        "env": [{"name": "MONGO_URI", "value": "x"}],
        "envFrom": [{"configMapRef": {"name": "cfg"}}],
    }
    configmaps = {"cfg": {"data": {"GARDIEN_LOG_LEVEL": "INFO", "OTEL_ENDPOINT": "x"}}}
    assert is_gardien_image(container["image"])
    assert not is_gardien_image("otel/opentelemetry-collector:0.120.0")
    assert unknown(k8s_container_env_names(container, configmaps)) == [
        "MONGO_URI",
        "OTEL_ENDPOINT",
    ]


def test_accepted_settings_come_from_the_model() -> None:
    accepted = accepted_settings()
    assert {"KAFKA_BOOTSTRAP_SERVERS", "MONGODB_URI", "GARDIEN_SERVICE_PORT"} <= accepted


# --------------------------------------------------------------------------- Dockerfile


def test_dockerfile_entrypoint_is_gardien() -> None:
    instructions = dockerfile_instructions()
    entrypoints = [args for instr, args in instructions if instr == "ENTRYPOINT"]
    assert entrypoints, "Dockerfile has no ENTRYPOINT"
    assert json.loads(entrypoints[-1]) == ["gardien"]
    cmds = [args for instr, args in instructions if instr == "CMD"]
    assert cmds, "Dockerfile has no CMD"
    assert json.loads(cmds[-1]) == ["service", "api"]


def test_dockerfile_runs_as_non_root_and_uses_locked_sync() -> None:
    instructions = dockerfile_instructions()
    froms = [args for instr, args in instructions if instr == "FROM"]
    assert froms
    users = [args for instr, args in instructions if instr == "USER"]
    assert users, "Dockerfile never switches user"
    assert users[-1].split(":", 1)[0] not in {"root", "0"}
    # The final USER must belong to the final stage.
    last_from = max(i for i, (instr, _) in enumerate(instructions) if instr == "FROM")
    last_user = max(i for i, (instr, _) in enumerate(instructions) if instr == "USER")
    assert last_user > last_from
    runs = " ".join(args for instr, args in instructions if instr == "RUN")
    assert re.search(r"uv sync [^&;]*--frozen", runs)
    assert "--no-dev" in runs


# --------------------------------------------------------------------------- compose


def test_compose_gardien_services_exist() -> None:
    services = gardien_compose_services(load_compose())
    commands = {tuple(compose_command(svc)) for svc in services.values()}
    for name in LONG_RUNNING:
        assert ("service", name) in commands, f"no compose service runs `gardien service {name}`"
    assert ("topics", "create") in commands


def test_compose_gardien_env_vars_are_accepted_settings() -> None:
    services = gardien_compose_services(load_compose())
    assert services, "no compose service is built from deploy/Dockerfile"
    problems = {}
    for name, svc in services.items():
        assert "env_file" not in svc, f"{name}: env_file cannot be checked; use environment"
        bad = unknown(compose_env_names(svc))
        if bad:
            problems[name] = bad
    assert not problems, f"unknown settings in deploy/compose.yaml: {problems}"


def test_compose_gardien_services_have_healthchecks() -> None:
    services = gardien_compose_services(load_compose())
    for name, svc in services.items():
        command = compose_command(svc)
        if command[:1] != ["service"]:
            continue  # one-shot jobs such as `topics create`
        check = svc.get("healthcheck")
        assert check, f"{name}: no healthcheck"
        assert not check.get("disable"), f"{name}: healthcheck disabled"
        assert "/healthz" in " ".join(map(str, check["test"])), f"{name}: not probing /healthz"


def test_compose_services_wait_for_their_dependencies() -> None:
    compose = load_compose()
    services = gardien_compose_services(compose)
    for name, svc in services.items():
        command = compose_command(svc)
        depends = svc.get("depends_on") or {}
        assert isinstance(depends, dict), f"{name}: depends_on needs conditions"
        if command in (["service", s] for s in SERVICE_NAMES):
            assert depends["kafka"]["condition"] == "service_healthy"
            assert depends["mongo"]["condition"] == "service_healthy"
            assert depends["topics"]["condition"] == "service_completed_successfully"
        if command == ["service", "api"]:
            for dep in SERVICE_NAMES:
                assert depends[dep]["condition"] == "service_healthy"


# --------------------------------------------------------------------------- kubernetes


def test_k8s_gardien_env_vars_are_accepted_settings() -> None:
    docs = load_k8s_docs()
    configmaps = {doc["metadata"]["name"]: doc for _, doc in docs if doc.get("kind") == "ConfigMap"}
    containers = list(gardien_k8s_containers(docs))
    assert containers, "no Kubernetes container uses the gardien image"
    problems = {}
    for filename, workload, container in containers:
        bad = unknown(k8s_container_env_names(container, configmaps))
        if bad:
            problems[f"{filename} {workload}/{container['name']}"] = bad
    assert not problems, f"unknown settings in deploy/k8s: {problems}"


def test_k8s_has_a_deployment_per_service_and_a_topics_job() -> None:
    docs = load_k8s_docs()
    args = {
        (doc["kind"], tuple(container.get("args", [])))
        for _, doc in docs
        for _, _, container in gardien_k8s_containers([("", doc)])
    }
    for name in LONG_RUNNING:
        assert ("Deployment", ("service", name)) in args, f"no Deployment for {name}"
    assert ("Job", ("topics", "create")) in args


def test_k8s_deployments_have_probes_and_hardening() -> None:
    deployments = [(f, d) for f, d in load_k8s_docs() if d.get("kind") == "Deployment"]
    assert deployments
    for filename, doc in deployments:
        spec = pod_spec(doc) or {}
        where = f"{filename} Deployment/{doc['metadata']['name']}"
        assert spec.get("securityContext", {}).get("runAsNonRoot") is True, where
        for container in spec.get("containers", []):
            live = container.get("livenessProbe")
            ready = container.get("readinessProbe")
            assert live, f"{where}: {container['name']} has no livenessProbe"
            assert ready, f"{where}: {container['name']} has no readinessProbe"
            if is_gardien_image(container["image"]):
                assert live["httpGet"]["path"] == "/healthz", where
                assert ready["httpGet"]["path"] == "/readyz", where
            resources = container.get("resources", {})
            assert resources.get("requests"), f"{where}: no resource requests"
            assert resources.get("limits"), f"{where}: no resource limits"
            ctx = container.get("securityContext", {})
            assert ctx.get("readOnlyRootFilesystem") is True, where
            assert ctx.get("allowPrivilegeEscalation") is False, where


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load(KUSTOMIZATION.read_text())
    listed = kustomization.get("resources") or []
    assert len(listed) == len(set(listed)), "duplicate kustomization resources"
    on_disk = {p.name for p in K8S_DIR.glob("*.yaml")} - {KUSTOMIZATION.name}
    assert set(listed) == on_disk


@pytest.mark.parametrize("path", sorted(K8S_DIR.glob("*.yaml")), ids=lambda p: p.name)
def test_k8s_documents_are_well_formed(path: Path) -> None:
    for doc in yaml.safe_load_all(path.read_text()):
        if doc is None or path == KUSTOMIZATION:
            continue
        assert doc.get("apiVersion"), path.name
        assert doc.get("kind"), path.name
        assert doc.get("metadata", {}).get("name"), path.name


def test_every_service_gets_the_pseudonym_key_from_a_secret() -> None:
    """One key for every service, never written in the manifests themselves."""
    for name, svc in gardien_compose_services(load_compose()).items():
        if compose_command(svc) in (["service", s] for s in SERVICE_NAMES):
            value = str((svc.get("environment") or {}).get("GARDIEN_PSEUDONYM_KEY", ""))
            assert value.startswith("${GARDIEN_PSEUDONYM_KEY:?"), f"compose {name}: no key"
    found = set()
    for _, workload, container in gardien_k8s_containers(load_k8s_docs()):
        args = container.get("args", [])
        if args[:1] != ["service"] or args[1] not in SERVICE_NAMES:
            continue
        env = {e["name"]: e for e in container.get("env", [])}
        ref = env["GARDIEN_PSEUDONYM_KEY"]["valueFrom"]["secretKeyRef"]
        assert ref["name"] == "gardien-pseudonym" and not ref.get("optional"), workload
        found.add(args[1])
    assert found == set(SERVICE_NAMES)
