"""The Kubernetes scaling manifests agree with the code (no cluster needed).

Rendered as plain YAML (deploy/k8s, deploy/prometheus-adapter.yaml) and compared with what
the services really do: the consumer group each one joins, the topics it reads and their
partition counts (shared/topics.py, what `gardien topics create` makes), the metric name and
labels `/metrics` really exposes for the consumer lag, the probe and scrape paths and ports.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib import import_module
from typing import Any

import pytest
import yaml
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from shared.lag import ConsumerLag
from shared.service import _lag_gauge
from shared.settings import SERVICE_NAMES, Settings
from shared.topics import all_topics
from tests.deploy.test_manifests import DEPLOY, load_k8s_docs, pod_spec

SETTINGS = Settings(gardien_service_port=8080, gardien_http_port=8000)
ADAPTER = DEPLOY / "prometheus-adapter.yaml"
GROUP_LABEL = "messaging_consumer_group_name"


def of_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for _, d in load_k8s_docs() if d.get("kind") == kind}


def service_app(name: str) -> FastAPI:
    app: FastAPI = import_module(f"services.{name}.app").create_app(SETTINGS)
    return app


async def exposed_lag(
    app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> dict[str, tuple[set[str], set[str]]]:
    """The lag gauge as `/metrics` shows it: {name: (group label values, label names)}."""

    async def lag(self: ConsumerLag) -> Mapping[Any, int]:
        return dict.fromkeys(self._tps, 7)

    monkeypatch.setattr(ConsumerLag, "lag", lag)
    runtime = app.state.runtime
    gauge = _lag_gauge(runtime)
    assert gauge is not None, f"{runtime.service} reads no topic"
    await runtime.metrics.refresh()
    families: dict[str, tuple[set[str], set[str]]] = {}
    for family in text_string_to_metric_families(runtime.metrics.exposition().decode()):
        for sample in family.samples:
            if "lag" in sample.name:
                groups, labels = families.setdefault(sample.name, (set(), set()))
                groups.add(sample.labels.get(GROUP_LABEL, ""))
                labels |= set(sample.labels)
    return families


def hpa_metric(hpa: dict[str, Any]) -> tuple[str, dict[str, str]]:
    [metric] = hpa["spec"]["metrics"]
    assert metric["type"] == "External", hpa["metadata"]["name"]
    ext = metric["external"]["metric"]
    return ext["name"], ext["selector"]["matchLabels"]


@pytest.mark.parametrize("name", SERVICE_NAMES)
async def test_each_service_scales_on_the_lag_its_members_expose(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = service_app(name)
    hpa = of_kind("HorizontalPodAutoscaler")[f"gardien-{name}"]
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": f"gardien-{name}",
    }
    metric, selector = hpa_metric(hpa)
    exposed = await exposed_lag(app, monkeypatch)
    assert metric in exposed, f"/metrics shows {sorted(exposed)}, the HPA asks for {metric}"
    group = app.state.runtime.consumer.group
    assert selector == {GROUP_LABEL: group}
    groups, labels = exposed[metric]
    assert groups == {group}
    # The adapter rule keeps one series per partition by these labels: they must exist.
    [rule] = yaml.safe_load(ADAPTER.read_text())["rules"]["external"]
    kept = " ".join(rule["metricsQuery"].split()).split("max by (", 1)[1].split(")", 1)[0]
    assert {label.strip() for label in kept.split(",")} <= labels


@pytest.mark.parametrize("name", SERVICE_NAMES)
def test_max_replicas_do_not_exceed_the_partitions_the_service_reads(name: str) -> None:
    plan = all_topics()
    read = service_app(name).state.runtime.consumer.topics()
    assert read and set(read) <= set(plan)
    hpa = of_kind("HorizontalPodAutoscaler")[f"gardien-{name}"]["spec"]
    assert 1 <= hpa["minReplicas"] <= hpa["maxReplicas"] <= max(plan[t] for t in read)


def test_the_topics_job_creates_the_partitions_of_shared_topics(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import gardien.admin
    from gardien.cli import app

    job = of_kind("Job")["gardien-topics"]
    [container] = (pod_spec(job) or {})["containers"]
    assert container["args"] == ["topics", "create"]
    asked: list[dict[str, int]] = []

    async def ensure(bootstrap: str, wanted: dict[str, int]) -> list[str]:
        asked.append(wanted)
        return []

    monkeypatch.setattr(gardien.admin, "ensure_topics", ensure)
    result = CliRunner().invoke(app, container["args"])
    assert result.exit_code == 0, result.output
    assert asked == [all_topics()]
    notes = job["metadata"]["annotations"]
    business = {n for t, n in all_topics().items() if not t.endswith(".dlq")}
    dead = {n for t, n in all_topics().items() if t.endswith(".dlq")}
    assert {int(notes["gardien.io/business-topic-partitions"])} == business
    assert {int(notes["gardien.io/dead-letter-topic-partitions"])} == dead


def test_every_deployment_has_a_disruption_budget_and_an_autoscaler() -> None:
    deployments = of_kind("Deployment")
    budgets, scalers = of_kind("PodDisruptionBudget"), of_kind("HorizontalPodAutoscaler")
    assert set(budgets) == set(deployments) == set(scalers)
    for name, deployment in deployments.items():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        selector = budgets[name]["spec"]["selector"]["matchLabels"]
        assert selector.items() <= labels.items(), name
        assert budgets[name]["spec"]["maxUnavailable"] == 1, name
        # The HPA owns the count: a `replicas` in the Deployment would reset it on each apply.
        assert "replicas" not in deployment["spec"], name


def probe_port(container: dict[str, Any], port: str | int) -> int:
    named = {p["name"]: p["containerPort"] for p in container["ports"]}
    return named[port] if isinstance(port, str) else port


@pytest.mark.parametrize("name", [*SERVICE_NAMES, "api"])
def test_probes_and_scrape_point_at_what_the_app_serves(name: str) -> None:
    deployment = of_kind("Deployment")[f"gardien-{name}"]
    [container] = (pod_spec(deployment) or {})["containers"]
    env = {e["name"]: e.get("value") for e in container.get("env", [])}
    port = int(env["GARDIEN_HTTP_PORT" if name == "api" else "GARDIEN_SERVICE_PORT"])
    app = import_module("services.gateway.app").create_app(SETTINGS) if name == "api" else None
    paths = {getattr(r, "path", "") for r in (app or service_app(name)).routes}
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        get = container[probe]["httpGet"]
        assert get["path"] in paths, (name, probe)
        assert probe_port(container, get["port"]) == port, (name, probe)
    notes = deployment["spec"]["template"]["metadata"]["annotations"]
    assert notes["prometheus.io/scrape"] == "true"
    assert int(notes["prometheus.io/port"]) == port
    assert notes["prometheus.io/path"] in paths
    [svc] = [s for s in of_kind("Service").values() if s["spec"]["selector"] == {
        "app.kubernetes.io/name": "gardien", "app.kubernetes.io/component": name}]  # fmt: skip
    assert probe_port(container, svc["spec"]["ports"][0]["targetPort"]) == port


def test_the_adapter_rule_serves_the_metric_the_autoscalers_ask_for() -> None:
    [rule] = yaml.safe_load(ADAPTER.read_text())["rules"]["external"]
    names = {hpa_metric(h)[0] for n, h in of_kind("HorizontalPodAutoscaler").items()
             if n != "gardien-api"}  # fmt: skip
    assert names == {rule["name"]["as"]}
    [metric] = names
    assert rule["seriesQuery"].startswith(metric + "{")
    assert GROUP_LABEL in rule["seriesQuery"]
    query = " ".join(rule["metricsQuery"].split())
    assert f"sum by ({GROUP_LABEL})" in query
    # One series per partition whatever the number of pods, before the sum.
    for label in (GROUP_LABEL, "messaging_destination_name", "messaging_destination_partition_id"):
        assert label in query.split("max by (", 1)[1].split(")", 1)[0]
