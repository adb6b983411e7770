"""The three services running in this process on the run's databases and topics: fixtures."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, TypedDict

import pytest
from tpp_plumbing.settings import KafkaSettings

from tpp_testkit.clients import Service, service_client
from tpp_testkit.databases import ThrowawayDatabases
from tpp_testkit.environment import SERVICES
from tpp_testkit.infrastructure import Infrastructure
from tpp_testkit.stalls import bounded_teardown


class _CommonSettings(TypedDict):
    """Settings every in-process service of the test platform shares."""

    relay_poll_interval_s: float
    consumer_max_message_bytes: int


@dataclass
class Platform:
    """The three services, started against this run's databases and topics."""

    registry: Service
    enrollment: Service
    reporting: Service
    kafka: KafkaSettings
    urls: dict[str, str]


@contextlib.asynccontextmanager
async def running_platform(
    infrastructure: Infrastructure,
    databases: ThrowawayDatabases,
    kafka: KafkaSettings,
    label: str = "",
) -> AsyncIterator[Platform]:
    """The three services in process, on new databases (named with ``label``) and ``kafka``;
    each service runs as its own Kafka principal where the broker has them."""
    from tpp_enrollment.app import create_app as enrollment_app
    from tpp_enrollment.config import Settings as EnrollmentSettings
    from tpp_registry.app import create_app as registry_app
    from tpp_registry.config import Settings as RegistrySettings
    from tpp_reporting.app import create_app as reporting_app
    from tpp_reporting.config import Settings as ReportingSettings

    urls = {s: await databases.create(s, label) for s in SERVICES}
    # Messages over 256 KiB are poison here, so that a test can produce an oversized one.
    common: _CommonSettings = {
        "relay_poll_interval_s": 0.5,
        "consumer_max_message_bytes": 256 * 1024,
    }

    def own(role: str) -> dict[str, Any]:
        if role not in infrastructure.principals:
            return {"kafka": kafka}
        user, password = infrastructure.principals[role]
        return {"kafka": kafka, "kafka_username": user, "kafka_password": password}

    apps = {
        "registry": registry_app(
            RegistrySettings(database_url=urls["registry"], **own("registry"), **common)
        ),
        "enrollment": enrollment_app(
            EnrollmentSettings(database_url=urls["enrollment"], **own("enrollment"), **common)
        ),
        "reporting": reporting_app(
            ReportingSettings(database_url=urls["reporting"], **own("reporting"), **common)
        ),
    }
    services: dict[str, Service] = {}
    for name, app in apps.items():
        await app.state.runtime.start()
        services[name] = Service(app, service_client(app, base_url=f"http://{name}"))
    try:
        yield Platform(kafka=kafka, urls=urls, **services)
    finally:
        for name, service in services.items():
            await bounded_teardown(service.aclose(), f"{name}'s HTTP client")
            await bounded_teardown(service.app.state.runtime.stop(), f"{name}'s runtime")


@pytest.fixture(scope="session")
async def platform(
    infrastructure: Infrastructure, databases: ThrowawayDatabases, kafka: KafkaSettings
) -> AsyncIterator[Platform]:
    """The whole platform, in process, on real Kafka and PostgreSQL; each service runs as its
    own Kafka principal where the broker has them (``Platform.kafka`` is the admin's)."""
    async with running_platform(infrastructure, databases, kafka) as running:
        yield running
