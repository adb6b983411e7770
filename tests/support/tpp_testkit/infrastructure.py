"""Where Kafka and PostgreSQL are (environment, testcontainers or the local stack): fixtures."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from sqlalchemy.engine import make_url
from tpp_ops import acl as platform_acl
from tpp_plumbing.messaging import acl
from tpp_plumbing.settings import KafkaSettings

from tpp_testkit.containers import (
    docker_available,
    free_host_port,
    kafka_container,
    postgres_container,
)
from tpp_testkit.environment import SERVICES, local_env


@dataclass(frozen=True)
class Infrastructure:
    """Where Kafka and PostgreSQL are, and how to reach each service's database."""

    bootstrap: str
    admin_url: str  # libpq URL of a superuser
    service_urls: dict[str, str]  # SQLAlchemy URLs of each service's own database
    #: Kafka as its admin (a super user where the broker enforces ACLs), without a prefix.
    kafka: KafkaSettings = field(default_factory=KafkaSettings)
    #: Each role's own Kafka user and password (``tpp_ops.acl.ROLES``); empty when Kafka is open.
    principals: dict[str, tuple[str, str]] = field(default_factory=dict)

    @property
    def acls(self) -> bool:
        """The broker authenticates clients and enforces the platform's ACLs."""
        return bool(self.principals)

    def as_role(self, role: str, kafka: KafkaSettings | None = None) -> KafkaSettings:
        """``kafka`` (default: the admin's) as a role's own principal, where Kafka has them."""
        base = kafka or self.kafka
        if role not in self.principals:
            return base
        return base.as_principal(*self.principals[role])

    def kafka_env(self, kafka: KafkaSettings | None = None) -> dict[str, str]:
        """``TPP_KAFKA_*`` variables for a subprocess (admin principal) plus each role's."""
        k = kafka or self.kafka
        env = {
            "TPP_KAFKA_BOOTSTRAP": k.bootstrap,
            "TPP_KAFKA_TOPIC_PREFIX": k.topic_prefix,
            "TPP_KAFKA_SECURITY_PROTOCOL": k.security_protocol,
            "TPP_KAFKA_SASL_MECHANISM": k.sasl_mechanism,
        }
        if k.username and k.password is not None:
            env |= {
                "TPP_KAFKA_USERNAME": k.username,
                "TPP_KAFKA_PASSWORD": k.password.get_secret_value(),
            }
        for role, (user, password) in self.principals.items():
            env[f"TPP_{role.upper()}_KAFKA_USERNAME"] = user
            env[f"TPP_{role.upper()}_KAFKA_PASSWORD"] = password
        return env

    async def grant(self, prefix: str) -> None:
        """Let each role use the topics and groups under ``prefix`` as on the stack."""
        if self.acls:
            names = {role: user for role, (user, _) in self.principals.items()}
            await acl.grant(self.kafka, platform_acl.layout(prefix, names))

    async def revoke(self, prefix: str) -> None:
        """Remove what :meth:`grant` created for ``prefix``."""
        if self.acls:
            names = {role: user for role, (user, _) in self.principals.items()}
            await acl.revoke(self.kafka, platform_acl.layout(prefix, names))


def _kafka_from(source: dict[str, str]) -> tuple[KafkaSettings, dict[str, tuple[str, str]]]:
    """The admin's Kafka settings and the roles' principals, from ``TPP_*`` variables."""
    kafka = KafkaSettings.from_env(source)
    principals: dict[str, tuple[str, str]] = {}
    if kafka.uses_sasl:
        for role in platform_acl.ROLES:
            user = source.get(f"TPP_{role.upper()}_KAFKA_USERNAME")
            password = source.get(f"TPP_{role.upper()}_KAFKA_PASSWORD")
            if user and password:
                principals[role] = (user, password)
    return kafka, principals


@pytest.fixture(scope="session")
def infrastructure() -> Iterator[Infrastructure]:
    """Real Kafka and PostgreSQL (environment, testcontainers, or the local stack)."""
    env = {k: v for k, v in os.environ.items() if k.startswith("TPP_")}
    if "TPP_KAFKA_BOOTSTRAP" in env and "TPP_PG_ADMIN_URL" in env:
        source = env
    elif docker_available():
        from testcontainers.core.docker_client import DockerClient

        host = DockerClient().host()
        with (
            kafka_container(host, free_host_port()) as container,
            postgres_container() as pg,
        ):
            admin = make_url(pg.get_connection_url(driver=None))
            urls = {
                s: admin.set(drivername="postgresql+asyncpg").render_as_string(False)
                for s in SERVICES
            }
            bootstrap = container.env["KAFKA_ADVERTISED_LISTENERS"].removeprefix("PLAINTEXT://")
            yield Infrastructure(
                bootstrap,
                admin.render_as_string(False),
                urls,
                kafka=KafkaSettings(bootstrap=bootstrap),
            )
            return
    else:
        source = local_env()
    kafka, principals = _kafka_from(source)
    print(
        f"\nintegration infrastructure: Kafka {kafka.bootstrap} ({kafka.security_protocol},"
        f" {'services as their own principals' if principals else 'no ACLs'})"
    )
    yield Infrastructure(
        bootstrap=kafka.bootstrap,
        admin_url=source["TPP_PG_ADMIN_URL"],
        service_urls={s: source[f"TPP_{s.upper()}_DATABASE_URL"] for s in SERVICES},
        kafka=kafka,
        principals=principals,
    )


@pytest.fixture(scope="session")
def run_id() -> str:
    """A short id naming this run's databases and topics."""
    return f"t{uuid.uuid4().hex[:10]}"
