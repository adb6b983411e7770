"""Where tpp-ops finds the platform: its Kafka principal and the services' replicas."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    from tpp_plumbing.settings import KafkaSettings

#: deploy/platform.sh: replica r of a service listens on its port + r * REPLICA_PORT_STEP.
REPLICA_PORT_STEP = 10


class OpsSettings(BaseSettings):
    """The operators' own Kafka principal (``TPP_OPS_*``), which may read every topic and
    group and write any topic (redrive); the connection itself comes from ``TPP_KAFKA_*``.
    And where the services' replicas answer (``service_urls``)."""

    model_config = SettingsConfigDict(env_prefix="TPP_OPS_")

    kafka_username: str | None = Field(
        None, description="Kafka user of tpp-ops (default: TPP_KAFKA_USERNAME)."
    )
    kafka_password: SecretStr | None = Field(None, description="Its password.")
    registry_urls: str | None = Field(
        None, description="Base URLs of the registry's replicas, comma-separated."
    )
    enrollment_urls: str | None = Field(
        None, description="Base URLs of the enrollment service's replicas, comma-separated."
    )
    reporting_urls: str | None = Field(
        None, description="Base URLs of the reporting service's replicas, comma-separated."
    )


def service_urls(name: str, env: dict[str, str] | None = None) -> list[str]:
    """Where ``name``'s replicas answer: ``TPP_OPS_<NAME>_URLS``, else the local ports."""
    env = dict(os.environ) if env is None else env
    urls = env.get(f"TPP_OPS_{name.upper()}_URLS")  # OpsSettings documents it
    if urls:
        return [url.strip().rstrip("/") for url in urls.split(",") if url.strip()]
    port = env.get(f"TPP_{name.upper()}_PORT")
    if not port:
        return []
    replicas = int(env.get("TPP_REPLICAS") or 1)
    return [f"http://127.0.0.1:{int(port) + r * REPLICA_PORT_STEP}" for r in range(replicas)]


def kafka_settings() -> KafkaSettings:
    """The platform's Kafka, as the ``TPP_OPS_KAFKA_USERNAME`` principal when it is set."""
    from tpp_plumbing.settings import KafkaSettings

    kafka = KafkaSettings()
    ops = OpsSettings()
    if ops.kafka_username and ops.kafka_password is not None:
        return kafka.as_principal(ops.kafka_username, ops.kafka_password)
    return kafka
