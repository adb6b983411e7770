"""deploy/observability/: alert rules and dashboard name only metrics the services export,
and docker-compose.yml's `observability` profile mounts and scrapes what exists."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from tpp_plumbing.observability.metrics import Metrics

ROOT = Path(__file__).resolve().parent.parent
OBSERVABILITY = ROOT / "deploy" / "observability"
DASHBOARD = OBSERVABILITY / "grafana" / "dashboards" / "tpp-operations.json"
SERVICES = {"registry": 8001, "enrollment": 8002, "reporting": 8003}
METRIC = re.compile(r"\btpp_[a-z0-9_]+")
#: The series prometheus_client writes for each metric type.
SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
}


def exported() -> set[str]:
    names: set[str] = set()
    for family in Metrics("any").registry.collect():
        names |= {family.name + suffix for suffix in SUFFIXES.get(family.type, ("",))}
    return names


def rules() -> list[dict[str, Any]]:
    document = yaml.safe_load((OBSERVABILITY / "alerts.yml").read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def dashboard_expressions() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def compose_service(name: str) -> dict[str, Any]:
    document = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    definition: dict[str, Any] = document["services"][name]
    return definition


def test_the_alerts_operations_asked_for_exist() -> None:
    assert {rule["alert"] for rule in rules()} == {
        "ConsumerLagGrowing",
        "OutboxOldestUnsentOld",
        "DeadLettersArriving",
        "NoRelayLeader",
        "HttpServerErrors",
        "ReadinessFlapping",
    }


@pytest.mark.parametrize(
    "expression",
    [rule["expr"] for rule in rules()] + dashboard_expressions(),
)
def test_every_metric_named_is_one_the_services_export(expression: str) -> None:
    named = set(METRIC.findall(expression))

    assert named, "every expression is about the platform's metrics"
    assert named <= exported(), f"not exported: {sorted(named - exported())}"


def test_the_dashboard_shows_what_operations_watch() -> None:
    titles = " ".join(p["title"] for p in json.loads(DASHBOARD.read_text())["panels"]).lower()

    for topic in ("published", "consumed", "lag", "outbox backlog", "dead letters", "latency"):
        assert topic in titles


def test_prometheus_scrapes_every_replica_of_every_service_and_loads_the_rules() -> None:
    config = yaml.safe_load((OBSERVABILITY / "prometheus.yml").read_text())
    prometheus = compose_service("prometheus")
    mounts = dict(str(v).removesuffix(":ro").split(":", 1) for v in prometheus["volumes"])

    jobs = {job["job_name"]: job["dns_sd_configs"][0] for job in config["scrape_configs"]}
    assert {name: (sd["names"], sd["port"]) for name, sd in jobs.items()} == {
        name: ([name], port) for name, port in SERVICES.items()
    }
    assert mounts["./deploy/observability/alerts.yml"] in config["rule_files"]
    for source in mounts:
        assert (ROOT / source).is_file()


def test_grafana_is_provisioned_with_the_datasource_and_the_dashboard() -> None:
    grafana = compose_service("grafana")
    mounts = dict(str(v).removesuffix(":ro").split(":", 1) for v in grafana["volumes"])
    provisioning = OBSERVABILITY / "grafana" / "provisioning"
    providers = yaml.safe_load((provisioning / "dashboards" / "tpp.yml").read_text())
    datasources = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())
    uids = {
        target["datasource"]["uid"]
        for panel in json.loads(DASHBOARD.read_text())["panels"]
        for target in panel["targets"]
    }

    assert mounts["./deploy/observability/grafana/provisioning"] == "/etc/grafana/provisioning"
    dashboards_dir = mounts["./deploy/observability/grafana/dashboards"]
    assert providers["providers"][0]["options"]["path"] == dashboards_dir
    assert uids == {datasources["datasources"][0]["uid"]}
    assert datasources["datasources"][0]["url"] == "http://prometheus:9090"


def test_observability_is_a_profile_the_platform_starts_without() -> None:
    for name in ("otel-collector", "prometheus", "grafana"):
        assert compose_service(name)["profiles"] == ["observability"]
    collector = yaml.safe_load((OBSERVABILITY / "otel-collector.yaml").read_text())
    assert "otlp" in collector["service"]["pipelines"]["traces"]["receivers"]
    for name in SERVICES:
        assert "OTEL_EXPORTER_OTLP_ENDPOINT" in compose_service(name)["environment"]
