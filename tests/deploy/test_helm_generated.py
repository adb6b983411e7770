"""The chart's generated parts match what deploy/helm/generate.py makes of the contracts."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml
from tpp_contracts.topics import ALL
from tpp_ops import acl

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "tpp"
TOPICS = "templates/strimzi/kafka-topics.yaml"
USERS = "templates/strimzi/kafka-users.yaml"


def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("helm_generate", ROOT / "deploy/helm/generate.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def documents(relative: str) -> list[dict[str, Any]]:
    """The objects of a generated template, its Helm lines left out."""
    text = (CHART / relative).read_text()
    plain = "\n".join(line for line in text.splitlines() if "{{" not in line)
    return [d for d in yaml.safe_load_all(plain) if d]


def test_the_committed_generated_files_are_what_the_generator_makes() -> None:
    stale = [
        relative
        for relative, text in generator().generated().items()
        if not (CHART / relative).is_file() or (CHART / relative).read_text() != text
    ]
    assert not stale, f"run `uv run --no-sync python deploy/helm/generate.py`: {stale} differ"


def test_every_contract_topic_and_its_dead_letter_twin_is_a_kafka_topic() -> None:
    topics = {
        d["metadata"]["name"]: d["spec"] for d in documents("templates/strimzi/kafka-topics.yaml")
    }
    expected = {t.name for t in ALL} | {f"{t.name}.dlq" for t in ALL}
    assert set(topics) == expected
    for topic in ALL:
        spec = topics[topic.name]
        assert spec["partitions"] == topic.partitions
        assert spec["replicas"] == 3
        assert spec["config"]["min.insync.replicas"] == "2"


def test_every_role_is_a_scram_user_with_the_acl_layouts_rules() -> None:
    users = {
        d["metadata"]["name"]: d["spec"] for d in documents("templates/strimzi/kafka-users.yaml")
    }
    assert set(users) == set(acl.ROLES)
    for role, spec in users.items():
        assert spec["authentication"] == {"type": "scram-sha-512"}
        granted = {
            (rule["resource"]["name"], operation)
            for rule in spec["authorization"]["acls"]
            for operation in rule["operations"]
        }
        wanted = {
            (b.name, b.operation.name.capitalize())
            for b in acl.layout("", {r: r for r in acl.ROLES})
            if b.principal == f"User:{role}"
        }
        assert granted == wanted, role
