"""The testcontainers path of the ``infrastructure`` fixture, built without a Docker engine.

Starting the containers needs Docker (absent here); what is checked is what a start would
use: the images, the KRaft configuration apache/kafka reads, the published and advertised
Kafka address, and that no deprecated testcontainers module is imported (warnings are
errors under the test settings)."""

from __future__ import annotations

import warnings
from typing import Any

import pytest
import testcontainers.core.container
import tpp_testkit as testing


class NoEngine:
    """Stands for testcontainers' DockerClient: building a container asks no engine."""

    def __init__(self, **_: Any) -> None:
        pass


@pytest.fixture(autouse=True)
def no_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(testcontainers.core.container, "DockerClient", NoEngine)


def test_kafka_is_apache_kafka_in_kraft_mode_advertised_where_published() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        container = testing.kafka_container("localhost", 49092)

    env = container.env
    assert container.image.endswith(testing.KAFKA_IMAGE)
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    node = env["KAFKA_NODE_ID"]
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"].startswith(f"{node}@")
    assert env["CLUSTER_ID"]
    assert env["KAFKA_ADVERTISED_LISTENERS"] == "PLAINTEXT://localhost:49092"
    assert container.ports == {"9092": 49092}
    listeners = dict(item.split("://") for item in env["KAFKA_LISTENERS"].split(","))
    assert listeners == {"PLAINTEXT": ":9092", "CONTROLLER": ":9093"}
    assert env["KAFKA_CONTROLLER_LISTENER_NAMES"] in listeners
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"


def test_postgres_is_built_from_the_community_module_without_a_driver() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        container = testing.postgres_container()

    assert container.image.endswith(testing.POSTGRES_IMAGE)
    assert container.driver == "", "asyncpg URLs are made from it, not psycopg2's"
    assert "max_connections=300" in str(container._command)


def test_kafka_container_is_not_testcontainers_confluent_kafka() -> None:
    """Its with_kraft() refuses apache/kafka (a version check against Confluent's tags)."""
    from testcontainers.community.kafka import KafkaContainer

    with pytest.raises(ValueError, match="not supported in Kraft mode"):
        KafkaContainer(testing.KAFKA_IMAGE).with_kraft()
    assert not isinstance(testing.kafka_container("localhost", 49092), KafkaContainer)
