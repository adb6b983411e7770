"""Pytest fixtures for the whole platform on real Kafka and PostgreSQL (a pytest plugin).

Where they come from, in order: the TPP_* environment variables when set; testcontainers
when a Docker engine answers; otherwise the local stack (deploy/stack.sh up), whose
settings are in deploy/local.env. Each test run isolates itself: its own databases
(suffix) and its own topics (prefix), created here and dropped at the end.
"""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict, TypeVar

import asyncpg
import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from fastapi import FastAPI
from sqlalchemy.engine import make_url
from tpp_contracts.topics import ALL as ALL_TOPICS

from tpp_plumbing.auth import Role, dev_headers
from tpp_plumbing.deadletter import SUFFIX
from tpp_plumbing.settings import KafkaSettings

ROOT = Path(__file__).resolve().parents[4]
SERVICES = ("registry", "enrollment", "reporting")
T = TypeVar("T")


def _local_env() -> dict[str, str]:
    values: dict[str, str] = {}
    for line in (ROOT / "deploy" / "local.env").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            values[key] = value
    return values


# Services and dev_token() verify and sign with the local development secret unless the
# environment names another (deploy/test.sh sources deploy/local.env; a bare pytest does not);
# likewise the enrollment service's development keys of personal data (apps and migrations).
_DEV_KEYS = ("TPP_AUTH_", "TPP_ENROLLMENT_PERSONAL_DATA_KEYS", "TPP_ENROLLMENT_PASSPORT_HASH_KEY")
for _key, _value in _local_env().items():
    if _key.startswith(_DEV_KEYS):
        os.environ.setdefault(_key, _value)


def auth_headers(role: Role | str, organizer_id: uuid.UUID | str | None = None) -> dict[str, str]:
    """``Authorization: Bearer`` with a development token of ``role`` (and organizer)."""
    return dev_headers(role, organizer_id)


def _docker_available() -> bool:
    if not (os.environ.get("DOCKER_HOST") or Path("/var/run/docker.sock").exists()):
        return False
    try:
        import docker

        client = docker.from_env(timeout=2)
        try:
            client.ping()
        finally:
            client.close()
    except Exception:
        return False
    return True


@dataclass(frozen=True)
class Infrastructure:
    """Where Kafka and PostgreSQL are, and how to reach each service's database."""

    bootstrap: str
    admin_url: str  # libpq URL of a superuser
    service_urls: dict[str, str]  # SQLAlchemy URLs of each service's own database


@pytest.fixture(scope="session")
def infrastructure() -> Iterator[Infrastructure]:
    """Real Kafka and PostgreSQL (environment, testcontainers, or the local stack)."""
    env = {k: v for k, v in os.environ.items() if k.startswith("TPP_")}
    if "TPP_KAFKA_BOOTSTRAP" in env and "TPP_PG_ADMIN_URL" in env:
        source = env
    elif _docker_available():
        from testcontainers.kafka import KafkaContainer
        from testcontainers.postgres import PostgresContainer

        with (
            KafkaContainer("apache/kafka:4.1.1").with_kraft() as kafka,
            PostgresContainer("postgres:15") as pg,
        ):
            admin = make_url(pg.get_connection_url()).set(drivername="postgresql")
            urls = {
                s: admin.set(drivername="postgresql+asyncpg").render_as_string(False)
                for s in SERVICES
            }
            yield Infrastructure(kafka.get_bootstrap_server(), admin.render_as_string(False), urls)
            return
    else:
        source = _local_env()
    print(f"\nintegration infrastructure: Kafka {source['TPP_KAFKA_BOOTSTRAP']}")
    yield Infrastructure(
        bootstrap=source["TPP_KAFKA_BOOTSTRAP"],
        admin_url=source["TPP_PG_ADMIN_URL"],
        service_urls={s: source[f"TPP_{s.upper()}_DATABASE_URL"] for s in SERVICES},
    )


@pytest.fixture(scope="session")
def run_id() -> str:
    """A short id naming this run's databases and topics."""
    return f"t{uuid.uuid4().hex[:10]}"


def _with_database(url: str, database: str) -> str:
    return make_url(url).set(database=database).render_as_string(hide_password=False)


@dataclass
class ThrowawayDatabases:
    """Creates throwaway, migrated databases owned by a service's role."""

    infra: Infrastructure
    run_id: str
    created: list[str]

    async def create(self, service: str, label: str = "") -> str:
        """A new database migrated to head for ``service``; returns its SQLAlchemy URL."""
        name = f"{service}_{self.run_id}{label}"
        owner = make_url(self.infra.service_urls[service]).username
        conn = await asyncpg.connect(self.infra.admin_url)
        try:
            await conn.execute(f'CREATE DATABASE "{name}" OWNER "{owner}"')
        finally:
            await conn.close()
        self.created.append(name)
        url = _with_database(self.infra.service_urls[service], name)
        await asyncio.to_thread(_migrate, service, url)
        return url

    async def drop_all(self) -> None:
        """Drop every database this run created."""
        conn = await asyncpg.connect(self.infra.admin_url)
        try:
            for name in self.created:
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


def _migrate(service: str, url: str) -> None:
    env = os.environ | {f"TPP_{service.upper()}_DATABASE_URL": url}
    subprocess.run(  # noqa: S603 - fixed command, our own config file
        [
            sys.executable,
            "-m",
            "alembic",
            "-c",
            str(ROOT / "services" / service / "alembic.ini"),
            "upgrade",
            "head",
        ],
        check=True,
        env=env,
        cwd=ROOT,
        capture_output=True,
    )


@pytest.fixture(scope="session")
async def databases(
    infrastructure: Infrastructure, run_id: str
) -> AsyncIterator[ThrowawayDatabases]:
    """This run's throwaway databases, dropped at the end."""
    dbs = ThrowawayDatabases(infrastructure, run_id, [])
    yield dbs
    await dbs.drop_all()


@pytest.fixture(scope="session")
async def kafka(infrastructure: Infrastructure, run_id: str) -> AsyncIterator[KafkaSettings]:
    """Kafka settings with this run's topic prefix; the topics (and ``.dlq`` twins) exist."""
    settings = KafkaSettings(bootstrap=infrastructure.bootstrap, topic_prefix=f"{run_id}.")
    admin = AIOKafkaAdminClient(bootstrap_servers=infrastructure.bootstrap)
    await admin.start()
    topics = [
        (settings.topic(t.name) + suffix, t.partitions)
        for t in ALL_TOPICS
        for suffix in ("", SUFFIX)
    ]
    names = [name for name, _ in topics]
    try:
        # Each topic and its dead-letter twin, as deploy/stack.sh creates them.
        await admin.create_topics([NewTopic(name, partitions, 1) for name, partitions in topics])
        yield settings
    finally:
        await admin.delete_topics(names)
        await admin.close()


@dataclass
class Service:
    """A service running in this process: its app, HTTP client (as an operator) and runtime."""

    app: FastAPI
    http: httpx.AsyncClient
    _clients: dict[tuple[str, str | None], httpx.AsyncClient] = field(default_factory=dict)

    @property
    def runtime(self) -> Any:
        return self.app.state.runtime

    def as_role(
        self, role: Role | str | None, organizer_id: uuid.UUID | str | None = None
    ) -> httpx.AsyncClient:
        """A client of this service sending a token of ``role`` (None: no token at all)."""
        key = (str(role) if role is not None else "", str(organizer_id) if organizer_id else None)
        client = self._clients.get(key)
        if client is None:
            headers = auth_headers(role, organizer_id) if role is not None else {}
            client = service_client(self.app, headers=headers, base_url=str(self.http.base_url))
            self._clients[key] = client
        return client

    async def aclose(self) -> None:
        """Close every client of this service."""
        for client in (self.http, *self._clients.values()):
            await client.aclose()


def service_client(
    app: FastAPI,
    *,
    role: Role | str | None = Role.OPERATOR,
    headers: dict[str, str] | None = None,
    base_url: str = "http://service",
    **kwargs: Any,
) -> httpx.AsyncClient:
    """An in-process client of ``app`` carrying a development token of ``role``."""
    if headers is None:
        headers = auth_headers(role) if role is not None else {}
    transport = httpx.ASGITransport(app=app, **kwargs)
    return httpx.AsyncClient(transport=transport, base_url=base_url, headers=headers)


class _CommonSettings(TypedDict):
    """Settings every in-process service of the test platform shares."""

    kafka: KafkaSettings
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


@pytest.fixture(scope="session")
async def platform(databases: ThrowawayDatabases, kafka: KafkaSettings) -> AsyncIterator[Platform]:
    """The whole platform, in process, on real Kafka and PostgreSQL."""
    from tpp_enrollment.app import create_app as enrollment_app
    from tpp_enrollment.config import Settings as EnrollmentSettings
    from tpp_registry.app import create_app as registry_app
    from tpp_registry.config import Settings as RegistrySettings
    from tpp_reporting.app import create_app as reporting_app
    from tpp_reporting.config import Settings as ReportingSettings

    urls = {s: await databases.create(s) for s in SERVICES}
    # Messages over 256 KiB are poison here, so that a test can produce an oversized one.
    common: _CommonSettings = {
        "kafka": kafka,
        "relay_poll_interval_s": 0.5,
        "consumer_max_message_bytes": 256 * 1024,
    }
    apps = {
        "registry": registry_app(RegistrySettings(database_url=urls["registry"], **common)),
        "enrollment": enrollment_app(EnrollmentSettings(database_url=urls["enrollment"], **common)),
        "reporting": reporting_app(ReportingSettings(database_url=urls["reporting"], **common)),
    }
    services: dict[str, Service] = {}
    for name, app in apps.items():
        await app.state.runtime.start()
        services[name] = Service(app, service_client(app, base_url=f"http://{name}"))
    try:
        yield Platform(kafka=kafka, urls=urls, **services)
    finally:
        for service in services.values():
            await service.aclose()
            await service.app.state.runtime.stop()


async def _eventually(
    check: Callable[[], Awaitable[T | None]], *, within: float = 20.0, what: str = "condition"
) -> T:
    """Poll ``check`` until it returns a truthy value or the deadline passes (then fail)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    last: T | None = None
    while loop.time() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(0.1)
    pytest.fail(f"{what} not reached within {within}s (last: {last!r})")


@pytest.fixture
def eventually() -> Callable[..., Awaitable[Any]]:
    """``await eventually(check, within=..., what=...)``: poll until truthy, else fail."""
    return _eventually


_taken_years: set[int] = set()


def fresh_year() -> int:
    """A program year no other test of this run uses (the year's figures are the test's).

    Neighbouring years are reserved too, since reports compare a year with the one before.
    Year 2100 is left to the operations tests, which use it as a fixed year.
    """
    while True:
        year = random.randint(2001, 2098)  # noqa: S311 - test data, not cryptography
        if not {year - 1, year, year + 1} & _taken_years:
            _taken_years.update({year - 1, year, year + 1})
            return year
