"""The dashboard and alert rules in deploy/: well formed, wired into compose, and naming only
metrics and labels the services really expose (checked against running apps)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from tests.deploy.promql import Names, balanced, names
from tests.deploy.test_manifests import DEPLOY, load_compose

ALERTS = DEPLOY / "prometheus" / "alerts.yml"
PROMETHEUS = DEPLOY / "prometheus" / "prometheus.yml"
DASHBOARD = DEPLOY / "grafana" / "gardien.json"
PROVISIONING = DEPLOY / "grafana" / "provisioning"
DURATION = re.compile(r"^(\d+(ms|s|m|h|d|w|y))+$")
# What the issue asks the alerts to cover (by the rule names in alerts.yml).
REQUIRED_ALERTS = {
    "GardienServiceDown",
    "GardienConsumerLagGrowing",
    "GardienDeadLettersGrowing",
    "GardienRequestDeadlineApproaching",
    "GardienBreachClockUnder12h",
    "GardienWebhookEndpointFailing",
}
# Series Prometheus makes itself for every target, and the labels it adds to every series.
SYNTHETIC = {"up": {"job", "instance"}}
TARGET_LABELS = {"job", "instance", "le"}


def rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(ALERTS.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def dashboard_exprs() -> list[str]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [t["expr"] for p in panels for t in p.get("targets", [])]


def all_exprs() -> list[str]:
    return [str(r["expr"]) for r in rules()] + dashboard_exprs()


def used() -> list[Names]:
    return [names(expr) for expr in all_exprs()]


def test_alert_rules_are_well_formed() -> None:
    doc = yaml.safe_load(ALERTS.read_text())
    assert set(doc) == {"groups"} and doc["groups"]
    group_names = [g["name"] for g in doc["groups"]]
    assert len(set(group_names)) == len(group_names)
    seen: set[str] = set()
    for group in doc["groups"]:
        assert set(group) <= {"name", "interval", "rules", "limit"} and group["rules"]
        for rule in group["rules"]:
            assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule
            assert re.fullmatch(r"[A-Z][A-Za-z0-9]+", rule["alert"]) and rule["alert"] not in seen
            seen.add(rule["alert"])
            assert isinstance(rule["expr"], str) and balanced(rule["expr"]), rule["alert"]
            assert "for" not in rule or DURATION.match(rule["for"]), rule["alert"]
            assert rule["labels"]["severity"] in {"critical", "warning", "info"}
            assert rule["annotations"]["summary"]
    assert seen >= REQUIRED_ALERTS


def test_dashboard_is_well_formed_and_uses_the_provisioned_datasource() -> None:
    board = json.loads(DASHBOARD.read_text())
    assert board["uid"] and board["title"] and board["schemaVersion"] >= 30
    ids = [p["id"] for p in board["panels"]]
    assert len(set(ids)) == len(ids)
    sources = yaml.safe_load((PROVISIONING / "datasources" / "prometheus.yml").read_text())
    uid = sources["datasources"][0]["uid"]
    for panel in board["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == uid and panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == uid and balanced(target["expr"])


def test_prometheus_scrapes_every_service_and_loads_the_rules() -> None:
    config = yaml.safe_load(PROMETHEUS.read_text())
    compose = load_compose()["services"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in compose["prometheus"]["volumes"]}
    for path in config["rule_files"]:
        assert (DEPLOY / mounts[path]).resolve() == ALERTS.resolve()
    assert (DEPLOY / mounts["/etc/prometheus/prometheus.yml"]).resolve() == PROMETHEUS.resolve()
    targets = {
        t for job in config["scrape_configs"] for s in job["static_configs"] for t in s["targets"]
    }
    for name in ("intake", "deadlines", "erasure", "audit"):
        port = compose[name]["environment"]["GARDIEN_SERVICE_PORT"]
        assert f"{name}:{port}" in targets
    assert f"api:{compose['api']['environment']['GARDIEN_HTTP_PORT']}" in targets
    jobs = {job["job_name"] for job in config["scrape_configs"]}
    assert all(re.fullmatch("gardien-.*", job) for job in jobs)  # GardienServiceDown's match


def test_grafana_is_provisioned_with_the_dashboard() -> None:
    grafana = load_compose()["services"]["grafana"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in grafana["volumes"]}
    assert (DEPLOY / mounts["/etc/grafana/provisioning"]).resolve() == PROVISIONING.resolve()
    provider = yaml.safe_load((PROVISIONING / "dashboards" / "gardien.yml").read_text())
    folder = Path(provider["providers"][0]["options"]["path"])
    assert (DEPLOY / mounts[str(folder / DASHBOARD.name)]).resolve() == DASHBOARD.resolve()


def test_every_expression_names_metrics() -> None:
    assert all(n.metrics for n in used())
    wanted = {m for n in used() for m in n.metrics}
    assert {"gardien_consumer_lag", "gardien_dead_letters_total", "up"} <= wanted
